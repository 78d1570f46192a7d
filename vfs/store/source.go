package store

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"unicode"
)

// A scheme is one kind of store, as a source URL names it. Adding a store
// is a file that defines its scheme, and an entry in schemes.
type scheme struct {
	// form is how a source of this kind is written, for messages.
	form string
	// check says why u cannot name such a store, or nil; it does no I/O.
	check func(u *url.URL) error
	// canonical is u's one spelling (u has passed check), before
	// escapeEnd.
	canonical func(u *url.URL) string
	open      func(ctx context.Context, u *url.URL, opts Options) (Store, error)
}

// schemes are the stores walrust knows, by URL scheme.
var schemes = map[string]*scheme{
	"file": &fileScheme,
	"s3":   &s3Scheme,
}

// schemeOrder lists them the same way in every message.
var schemeOrder = []string{"file", "s3"}

// forms is how every kind of source is written: "file:///absolute/dir or
// s3://bucket/prefix".
func forms() string {
	var f []string
	for _, name := range schemeOrder {
		f = append(f, schemes[name].form)
	}
	return strings.Join(f, " or ")
}

// parseSource finds the scheme of a source URL and checks it can name a
// store, without any I/O.
func parseSource(raw string) (*url.URL, *scheme, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("source %q: %w", raw, err)
	}
	if u.Scheme == "" {
		return nil, nil, fmt.Errorf("source %q has no scheme: use %s", raw, forms())
	}
	sc, ok := schemes[u.Scheme]
	if !ok {
		return nil, nil, fmt.Errorf("source %q: unknown scheme %q: use %s", raw, u.Scheme, forms())
	}
	if err := sc.check(u); err != nil {
		return nil, nil, fmt.Errorf("source %s: %w", u.Redacted(), err)
	}
	return u, sc, nil
}

// Check says why a source URL cannot name a store, or nil: a command line
// refuses it as a usage error before anything else.
func Check(rawURL string) error {
	_, _, err := parseSource(rawURL)
	return err
}

// Open returns the store a source URL names:
//
//	file:///abs/dir      a local directory in Litestream's file-replica layout
//	s3://bucket/prefix   an S3 (or S3-compatible) bucket
func Open(ctx context.Context, rawURL string, opts Options) (Store, error) {
	u, sc, err := parseSource(rawURL)
	if err != nil {
		return nil, err
	}
	return sc.open(ctx, u, opts)
}

// Canonical spells a source URL one way, so that the same store compares
// equal however it was written: file:/dir, file://localhost/dir/ and
// file:///dir/./ are all file:///dir; s3://bucket/app/ is s3://bucket/app.
// A string that names no store comes back trimmed, for Open to refuse.
// Canonical(Canonical(s)) is Canonical(s), and both name the same store.
func Canonical(source string) string {
	s := strings.TrimSpace(source)
	if u, sc, err := parseSource(s); err == nil {
		return escapeEnd(sc.canonical(u))
	}
	if u, err := url.Parse(s); err == nil && u.Scheme != "" && schemes[u.Scheme] == nil {
		// Spaces too: a second call trims them first, and must find
		// nothing left to do.
		return strings.TrimRightFunc(s, func(r rune) bool { return r == '/' || unicode.IsSpace(r) })
	}
	return s
}

// escapePath spells a decoded path so that url.Parse gives back the same
// path, and nothing else: a '%' would start an escape, a '?' a query (an
// escaped "%3Fendpoint=" must not become a query parameter), a '#' a
// fragment. Everything else stays as written, spaces included, so that
// the canonical form of a plain path is the path.
func escapePath(p string) string {
	if !strings.ContainsAny(p, "%?#") {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '%', '?', '#':
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// escapeEnd escapes whitespace at the end of a canonical URL, which
// Canonical would otherwise trim from it the second time.
func escapeEnd(c string) string {
	t := strings.TrimRightFunc(c, unicode.IsSpace)
	if len(t) == len(c) {
		return c
	}
	var b strings.Builder
	b.WriteString(t)
	for i := len(t); i < len(c); i++ {
		fmt.Fprintf(&b, "%%%02X", c[i])
	}
	return b.String()
}
