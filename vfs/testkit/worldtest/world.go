// Package worldtest is the producer side of a replication test: a real
// SQLite database (the reference), the file store it publishes to as LTX
// files, and every image it has had, by TXID, to compare a replica with.
// The follower's, the replica's and the end-to-end tests share it.
package worldtest

import (
	"bytes"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3" // the reference database
	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/internal/ltxguard"
	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/ltxtest"
	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// World is one test's store, reference database and replica path.
type World struct {
	T        testing.TB
	Dir      string
	StoreDir string
	Source   string // file:// URL of StoreDir
	Store    *store.FileStore
	Ref      *RefDB
	Pub      *ltxtest.Primary
	Path     string           // the replica's local file (not created here)
	Logs     *testtool.Buffer // for the code under test to log into

	mu     sync.Mutex // guards images and sums, for reader goroutines
	images map[ltx.TXID][]byte
	sums   map[ltx.TXID]ltx.Checksum
}

// Options shape a new World.
type Options struct {
	PageSize   int  // default 4096
	NoChecksum bool // publish files the way Litestream does
}

// New makes a World whose reference holds table t (id, k, v) and is
// recorded, unpublished, as TXID 1.
func New(t testing.TB, opts Options) *World {
	t.Helper()
	if opts.PageSize == 0 {
		opts.PageSize = 4096
	}
	dir := t.TempDir()
	w := &World{
		T: t, Dir: dir, StoreDir: filepath.Join(dir, "store"),
		Path: filepath.Join(dir, "replica.db"), Logs: &testtool.Buffer{},
		images: map[ltx.TXID][]byte{}, sums: map[ltx.TXID]ltx.Checksum{},
	}
	w.Source = "file://" + w.StoreDir
	if err := os.MkdirAll(w.StoreDir, 0o755); err != nil {
		t.Fatal(err)
	}
	w.Store = w.OpenStore()
	w.Ref = NewRefDB(t, filepath.Join(dir, "primary.db"), opts.PageSize)
	w.Pub = &ltxtest.Primary{Store: w.Store, PageSize: uint32(opts.PageSize), NoChecksum: opts.NoChecksum}
	w.Advance(w.Ref.Image())
	return w
}

// OpenStore opens another handle on the World's store.
func (w *World) OpenStore() *store.FileStore {
	w.T.Helper()
	st, err := store.OpenFile(w.StoreDir)
	if err != nil {
		w.T.Fatal(err)
	}
	return st
}

// Advance records img as the next TXID without publishing anything.
func (w *World) Advance(img []byte) ltx.TXID {
	txid := w.Pub.TXID + 1
	w.Pub.Advance(img, txid)
	w.mu.Lock()
	w.images[txid] = w.Pub.Image
	w.sums[txid] = w.Pub.Checksum
	w.mu.Unlock()
	return txid
}

// AdvanceRef records the reference's current file as the next TXID
// without publishing anything.
func (w *World) AdvanceRef() ltx.TXID {
	w.T.Helper()
	return w.Advance(w.Ref.Image())
}

// Image is the primary's image at txid; safe from any goroutine.
func (w *World) Image(txid ltx.TXID) []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.images[txid]
}

// Sum is the database checksum of the image at txid.
func (w *World) Sum(txid ltx.TXID) ltx.Checksum {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sums[txid]
}

// Commit publishes the reference's current file as the next TXID at L0.
func (w *World) Commit() ltx.TXID {
	w.T.Helper()
	prev := w.Pub.TXID
	txid := w.AdvanceRef()
	w.Put(0, w.Encode(prev+1, txid))
	return txid
}

// Encode is the LTX file that takes the image at minTXID-1 to the image
// at maxTXID (a snapshot when minTXID is 1).
func (w *World) Encode(minTXID, maxTXID ltx.TXID) []byte {
	w.T.Helper()
	return ltxtest.Encode(w.T, w.Image(minTXID-1), w.Image(maxTXID), w.Pub.PageSize, minTXID, maxTXID,
		w.Sum(minTXID-1), w.Pub.NoChecksum, time.Now())
}

// Snapshot publishes the current image as a snapshot.
func (w *World) Snapshot() store.FileInfo {
	w.T.Helper()
	return w.Put(store.SnapshotLevel, w.Encode(1, w.Pub.TXID))
}

// Put writes an LTX file into the store the way a producer does
// (temporary name, then rename), without the fsyncs of store.Put: the
// tests that write thousands of files would spend most of their time
// syncing.
func (w *World) Put(level int, data []byte) store.FileInfo {
	w.T.Helper()
	hdr, _, err := ltx.DecodeHeader(bytes.NewReader(data))
	if err != nil {
		w.T.Fatal(err)
	}
	fi := store.FileInfo{Level: level, MinTXID: hdr.MinTXID, MaxTXID: hdr.MaxTXID}
	w.WriteRaw(fi, data)
	return fi
}

// FilePath is where the store keeps fi.
func (w *World) FilePath(fi store.FileInfo) string {
	return filepath.Join(w.StoreDir, "ltx", fmt.Sprint(fi.Level), fi.Name())
}

// WriteRaw puts bytes under a file's name, whatever they are, as a broken
// producer or a hostile store would.
func (w *World) WriteRaw(fi store.FileInfo, data []byte) {
	w.T.Helper()
	p := w.FilePath(fi)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		w.T.Fatal(err)
	}
	tmp := filepath.Join(filepath.Dir(p), "."+fi.Name()+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		w.T.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		w.T.Fatal(err)
	}
}

// Remove deletes fi from the store, as retention does.
func (w *World) Remove(fi store.FileInfo) {
	w.T.Helper()
	if err := os.Remove(w.FilePath(fi)); err != nil {
		w.T.Fatal(err)
	}
}

// InsertRows adds n rows of size bytes to the reference in one transaction.
func (w *World) InsertRows(n, size int) {
	w.T.Helper()
	w.Ref.Tx(func(tx *sql.Tx) {
		for range n {
			if _, err := tx.Exec("INSERT INTO t (k, v) VALUES (?, ?)", "r", Blob(int(w.Pub.TXID)*1000+n, size)); err != nil {
				w.T.Fatal(err)
			}
		}
	})
}

// L0 names the level-0 file of one TXID.
func L0(txid ltx.TXID) store.FileInfo {
	return store.FileInfo{Level: 0, MinTXID: txid, MaxTXID: txid}
}

// Blob is deterministic content of n bytes.
func Blob(seed, n int) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// Forget drops the images older than txid, but for the newest: a long
// test keeps only what it may still compare with.
func (w *World) Forget(txid ltx.TXID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for t := range w.images {
		if t < txid && t != w.Pub.TXID {
			delete(w.images, t)
		}
	}
}

// CraftHeader is the header of a file from minTXID to maxTXID that a
// hostile store might serve: no checksums to get right, at the World's
// page size, with whatever commit it claims.
func (w *World) CraftHeader(minTXID, maxTXID ltx.TXID, commit uint32) ltx.Header {
	return ltx.Header{
		Version: ltx.Version, Flags: ltx.HeaderFlagNoChecksum, PageSize: w.Pub.PageSize,
		Commit: commit, MinTXID: minTXID, MaxTXID: maxTXID, Timestamp: time.Now().UnixMilli(),
	}
}

// WantOf is what a replica must check of an LTX file listed under the
// name its own header gives.
func WantOf(data []byte, snapshot bool) ltxguard.Want {
	hdr, _, _ := ltx.DecodeHeader(bytes.NewReader(data))
	return ltxguard.Want{MinTXID: hdr.MinTXID, MaxTXID: hdr.MaxTXID, Snapshot: snapshot}
}

// Flip is a copy of b with one bit of byte i flipped: a file damaged in
// the store.
func Flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x40
	return c
}
