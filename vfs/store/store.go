// Package store is the object store walrust reads LTX files from (and its
// publisher writes them to): a local directory or an S3 bucket, both in the
// layout Litestream v0.5 writes.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"time"

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

// Reader is what a replica needs of a store: it lists and reads LTX
// files by level, and never writes.
type Reader interface {
	// ListAfter lists the LTX files of one level whose MinTXID is greater than
	// after, sorted by MinTXID then MaxTXID. Objects whose names are not LTX
	// file names are ignored. after=0 lists the whole level.
	ListAfter(ctx context.Context, level int, after ltx.TXID) ([]FileInfo, error)

	// Open streams one LTX file, never more than the listed f.Size bytes of
	// it. A file that is gone returns an error that satisfies
	// errors.Is(err, ErrNotFound).
	Open(ctx context.Context, f FileInfo) (io.ReadCloser, error)

	// Stats counts the requests made so far and the bytes downloaded.
	Stats() Stats

	// String is the store's URL, with no secret in it.
	String() string
}

// Writer is what a publisher needs besides.
type Writer interface {
	// Put writes one LTX file so that readers never see it partially written.
	Put(ctx context.Context, f FileInfo, r io.Reader) error

	// Delete removes one LTX file; a file that is already gone is not an error.
	Delete(ctx context.Context, f FileInfo) error
}

// Store is a place that holds LTX files by level: every store both reads
// and writes.
type Store interface {
	Reader
	Writer
}

// ListAll lists every level, L0 to the snapshots, in one slice, level by
// level (each sorted as ListAfter sorts). It costs one request per level.
func ListAll(ctx context.Context, st Reader) ([]FileInfo, error) {
	var all []FileInfo
	for level := 0; level <= SnapshotLevel; level++ {
		files, err := st.ListAfter(ctx, level, 0)
		if err != nil {
			return nil, err
		}
		all = append(all, files...)
	}
	return all, nil
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

// maxListed bounds the objects one listing of a level may go through (junk
// included): a level that holds more is not one a replica can follow (a
// store keeps a few thousand files per level), and a server that keeps
// saying there is more must not make a poll run, and grow, for ever. A
// variable for tests.
var maxListed = 2_000_000

// errTooMany is why a listing stopped at maxListed.
func errTooMany(op string) error {
	return fmt.Errorf("%s: more than %d objects; refusing to list further (a store keeps a few thousand files per level; is this the right prefix?)", op, maxListed)
}

// ErrUnreachable is wrapped by the errors of a store that did not answer
// (a server error after every retry, a store's own timeout).
var ErrUnreachable = errors.New("store unreachable")

// IsUnreachable tells an error of a store that did not answer (a refused or
// dropped connection, a name that does not resolve yet, a timeout, a server
// error after every retry) from one where it answered. An open of a new
// replica waits out the former, up to its timeout, and fails on the latter.
// It holds for any store: network errors and deadlines are recognised as
// they are, and a store marks the rest with ErrUnreachable.
func IsUnreachable(err error) bool {
	if err == nil || IsPermanent(err) {
		return false
	}
	var netErr net.Error
	return errors.Is(err, ErrUnreachable) || errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded)
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
	// Create makes a local directory store that does not exist yet (a
	// publisher's destination); a replica never creates its source.
	Create bool
	// Clients, when set, shares S3 clients between the stores opened
	// with it (see Clients).
	Clients *Clients
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
