package vfs

import (
	"fmt"
	"net/url"
	"path"
	"strings"

	"github.com/walrust/walrust/vfs/store"
)

// WALRUST_SOURCES is for applications that run SQL they do not trust: any
// SQL string can name a replica URI (ATTACH 'file:x?vfs=walrust&source=…'),
// and so, without it, make this process follow any store and send signed
// S3 requests, session token included, to any endpoint. When it is set,
// only the stores it lists may be followed, and S3 endpoints come from the
// environment or from the listed source URLs, never from a URI parameter.

// sourcesEnv names the allowlist's environment variable.
const sourcesEnv = "WALRUST_SOURCES"

// sourceList is WALRUST_SOURCES: the source URL prefixes an open may
// follow. Empty (but set) allows none.
type sourceList struct {
	raw      string
	prefixes []sourceURL
}

// sourceURL is a source in canonical form, split the way the store that
// opens it splits it.
type sourceURL struct {
	scheme, host, path string
	query              string // encoded, keys sorted: S3 options carried in the URL
}

// parseSources reads WALRUST_SOURCES: source URL prefixes separated by
// commas.
func parseSources(raw string) (*sourceList, error) {
	l := &sourceList{raw: raw}
	for _, s := range strings.Split(raw, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		u, err := parseSourceURL(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sourcesEnv, err)
		}
		l.prefixes = append(l.prefixes, u)
	}
	return l, nil
}

// parseSourceURL parses a source as the store will: its canonical form,
// parsed again (store.Open parses what Canonical returns). A canonical
// form that is not clean once parsed (escaped dots or slashes) is refused
// rather than guessed at.
func parseSourceURL(s string) (sourceURL, error) {
	c := store.Canonical(s)
	u, err := url.Parse(c)
	if err != nil {
		return sourceURL{}, fmt.Errorf("source %q: %w", s, err)
	}
	if err := store.Check(c); err != nil {
		return sourceURL{}, err
	}
	if u.User != nil || u.Fragment != "" {
		return sourceURL{}, fmt.Errorf("source %q: credentials and fragments do not belong in a source URL", s)
	}
	p := path.Clean("/" + u.Path)
	if u.Path != p && !(u.Scheme == "s3" && u.Path == "") {
		return sourceURL{}, fmt.Errorf("source %q: its path %q is not plain (escaped dots or slashes)", s, u.Path)
	}
	return sourceURL{scheme: u.Scheme, host: u.Host, path: p, query: u.Query().Encode()}, nil
}

// under says whether src is prefix or below it: the same store, and a path
// that continues prefix's at a path segment (s3://bucket/app covers
// s3://bucket/app/eu but not s3://bucket/app2).
func (prefix sourceURL) under(src sourceURL) bool {
	if src.scheme != prefix.scheme || src.host != prefix.host || src.query != prefix.query {
		return false
	}
	return prefix.path == "/" || src.path == prefix.path || strings.HasPrefix(src.path, prefix.path+"/")
}

// check refuses a source the list does not cover; from says where the
// source came from, for the message.
func (l *sourceList) check(source, from string) error {
	if src, err := parseSourceURL(source); err == nil {
		for _, p := range l.prefixes {
			if p.under(src) {
				return nil
			}
		}
	}
	return fmt.Errorf("source %s%s is not in %s (%s): this process follows only the stores listed there",
		store.Canonical(source), from, sourcesEnv, l.raw)
}
