// Package store is the object store walrust reads LTX files from (and its
// publisher writes them to): a local directory or an S3 bucket, both in the
// layout Litestream v0.5 writes.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/superfly/ltx"
)

// SnapshotLevel is the level that holds full-database snapshots (MinTXID 1).
// Levels 1..MaxCompactionLevel hold compactions of level 0.
const SnapshotLevel = 9

// MaxCompactionLevel is the highest level between L0 and the snapshots that a
// follower searches when it has to bridge a gap.
const MaxCompactionLevel = 8

// FileInfo describes one LTX file in a store.
type FileInfo struct {
	Level   int
	MinTXID ltx.TXID
	MaxTXID ltx.TXID
	Size    int64 // bytes; 0 when the store did not say. Open reads no more than this.

	// ModTime is when the store last wrote the file (a file's mtime, an S3
	// object's LastModified); zero when it did not say. It tells a
	// publisher how old a snapshot is without reading it.
	ModTime time.Time
}

// FileKey identifies a file the same way in every listing: a FileInfo
// without ModTime, which a store may report differently (or not at all) from
// one listing to the next and which time.Time makes unsafe to compare with ==.
type FileKey struct {
	Level   int
	MinTXID ltx.TXID
	MaxTXID ltx.TXID
	Size    int64
}

// Key is the file's FileKey, for maps of files built from several listings.
func (f FileInfo) Key() FileKey {
	return FileKey{Level: f.Level, MinTXID: f.MinTXID, MaxTXID: f.MaxTXID, Size: f.Size}
}

// listedSize is the size a download of f is held to (see LimitBody): the
// listed size, or -1 (unbounded) when the caller had no listing to say it.
func listedSize(f FileInfo) int64 {
	if f.Size > 0 {
		return f.Size
	}
	return -1
}

// Name is the file's base name, as Litestream writes it.
func (f FileInfo) Name() string { return ltx.FormatFilename(f.MinTXID, f.MaxTXID) }

func (f FileInfo) String() string { return fmt.Sprintf("L%d/%s", f.Level, f.Name()) }

// Store is a place that holds LTX files by level.
type Store interface {
	// ListAfter lists the LTX files of one level whose MinTXID is greater than
	// after, sorted by MinTXID then MaxTXID. Objects whose names are not LTX
	// file names are ignored. after=0 lists the whole level.
	ListAfter(ctx context.Context, level int, after ltx.TXID) ([]FileInfo, error)

	// Open streams one LTX file. A file that is gone returns an error that
	// satisfies errors.Is(err, ErrNotFound).
	Open(ctx context.Context, f FileInfo) (io.ReadCloser, error)

	// Put writes one LTX file so that readers never see it partially written.
	Put(ctx context.Context, f FileInfo, r io.Reader) error

	// Delete removes one LTX file; a file that is already gone is not an error.
	Delete(ctx context.Context, f FileInfo) error

	// Stats counts the requests made so far and the bytes downloaded.
	Stats() Stats

	// String is the store's URL, with no secret in it.
	String() string
}

// ErrNotFound is returned (wrapped) when a file or the store itself is missing.
var ErrNotFound = errors.New("not found")

// Errors that retrying will not cure; IsPermanent reports them.
var (
	// ErrStoreNotFound: the bucket (or directory) itself is missing. Errors
	// that wrap it wrap ErrNotFound too.
	ErrStoreNotFound = errors.New("store does not exist")
	// ErrAccessDenied: the store refuses the credentials, or there are none.
	ErrAccessDenied = errors.New("access denied")
	// ErrBadConfig: the source's configuration cannot work (wrong region,
	// invalid bucket name, unreadable AWS configuration).
	ErrBadConfig = errors.New("bad store configuration")
)

// IsPermanent tells a store error that needs a person (a missing bucket,
// wrong or missing credentials, access denied, a wrong region) from one that
// a later retry may cure (a timeout, a server error, a dropped connection, a
// file that is gone). A follower fails its open on the former and retries
// the latter.
func IsPermanent(err error) bool {
	return errors.Is(err, ErrStoreNotFound) || errors.Is(err, ErrAccessDenied) || errors.Is(err, ErrBadConfig)
}

// Stats counts store requests by kind and the bytes read from the store.
type Stats struct {
	Lists int64 `json:"list_requests"`
	Gets  int64 `json:"get_requests"`
	Puts  int64 `json:"put_requests"`
	Bytes int64 `json:"bytes_downloaded"`
}

// counters is the concurrency-safe accumulator behind Stats.
type counters struct {
	lists, gets, puts, bytes atomic.Int64
}

func (c *counters) snapshot() Stats {
	return Stats{Lists: c.lists.Load(), Gets: c.gets.Load(), Puts: c.puts.Load(), Bytes: c.bytes.Load()}
}

// countingReader adds every byte read to a counter.
type countingReader struct {
	io.ReadCloser
	n *atomic.Int64
}

func (r countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.n.Add(int64(n))
	return n, err
}

// Options configure stores that need more than a URL (S3-compatible servers).
// Empty fields fall back to the environment, the way AWS tools do.
type Options struct {
	Endpoint  string // e.g. http://127.0.0.1:7070
	Region    string
	PathStyle *bool // nil: decide from the endpoint
}

// Open returns the store a source URL names:
//
//	file:///abs/dir      a local directory in Litestream's file-replica layout
//	s3://bucket/prefix   an S3 (or S3-compatible) bucket
func Open(ctx context.Context, rawURL string, opts Options) (Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", rawURL, err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("source %q: a file URL needs an absolute path (file:///dir), not host %q", rawURL, u.Host)
		}
		return OpenFile(u.Path)
	case "s3":
		return OpenS3(ctx, u, opts)
	case "":
		return nil, fmt.Errorf("source %q has no scheme: use file:///abs/dir or s3://bucket/prefix", rawURL)
	default:
		return nil, fmt.Errorf("source %q: unknown scheme %q: use file:///abs/dir or s3://bucket/prefix", rawURL, u.Scheme)
	}
}

// parseName turns an LTX file name into its TXID range; ok is false for any
// other object (temporary files, Litestream's metadata, junk).
func parseName(level int, name string, size int64, modTime time.Time) (FileInfo, bool) {
	if !strings.HasSuffix(name, ".ltx") {
		return FileInfo{}, false
	}
	minTXID, maxTXID, err := ltx.ParseFilename(name)
	if err != nil || minTXID == 0 || minTXID > maxTXID {
		return FileInfo{}, false
	}
	return FileInfo{Level: level, MinTXID: minTXID, MaxTXID: maxTXID, Size: size, ModTime: modTime}, true
}

// Canonical spells a source URL one way, so that the same store compares
// equal however it was written: file:/dir, file://localhost/dir/ and
// file:///dir/./ are all file:///dir; s3://bucket/app/ is s3://bucket/app.
// A string that is not a URL comes back trimmed.
func Canonical(source string) string {
	s := strings.TrimSpace(source)
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return s
	}
	switch u.Scheme {
	case "file":
		if (u.Host != "" && u.Host != "localhost") || u.Opaque != "" || !strings.HasPrefix(u.Path, "/") {
			return s // not an absolute local path: leave it for Open to refuse
		}
		return escapeEnd("file://" + escapePath(path.Clean("/"+u.Path)))
	case "s3":
		if u.Host == "" || u.Opaque != "" {
			return s // not a bucket: leave it for Open to refuse
		}
		c := "s3://" + u.Host
		if p := strings.Trim(path.Clean("/"+u.Path), "/"); p != "" {
			c += "/" + escapePath(p)
		}
		if u.RawQuery != "" {
			c += "?" + u.RawQuery
		}
		return escapeEnd(c)
	}
	// Spaces too: a second call trims them first, and must find nothing
	// left to do.
	return strings.TrimRightFunc(s, func(r rune) bool { return r == '/' || unicode.IsSpace(r) })
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
