package replica

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/internal/ltxguard"
	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/ltxtest"
	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// refDB is the reference: a real SQLite database in rollback-journal mode,
// so that its file alone is the committed state.
type refDB struct {
	t    testing.TB
	path string
	db   *sql.DB
}

func newRefDB(t testing.TB, dir string, pageSize int) *refDB {
	t.Helper()
	path := filepath.Join(dir, "primary.db")
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=DELETE&_synchronous=OFF")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	r := &refDB{t: t, path: path, db: db}
	r.exec(fmt.Sprintf("PRAGMA page_size=%d", pageSize))
	r.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT, v BLOB)")
	r.exec("CREATE INDEX t_k ON t (k)")
	var got int
	if err := db.QueryRow("PRAGMA page_size").Scan(&got); err != nil || got != pageSize {
		t.Fatalf("reference page size = %d, %v; want %d", got, err, pageSize)
	}
	return r
}

func (r *refDB) exec(q string, args ...any) {
	r.t.Helper()
	if _, err := r.db.Exec(q, args...); err != nil {
		r.t.Fatalf("%s: %v", q, err)
	}
}

// tx runs fn in one transaction: one commit, one TXID.
func (r *refDB) tx(fn func(tx *sql.Tx)) {
	r.t.Helper()
	tx, err := r.db.Begin()
	if err != nil {
		r.t.Fatal(err)
	}
	fn(tx)
	if err := tx.Commit(); err != nil {
		r.t.Fatal(err)
	}
}

func (r *refDB) image() []byte { return ltxtest.ReadImage(r.t, r.path) }

// blob is deterministic content of n bytes.
func blob(seed, n int) []byte {
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

// world is one test's store, primary and replica path, with every image the
// primary has had, by TXID.
type world struct {
	t        testing.TB
	dir      string
	storeDir string
	source   string
	st       *store.FileStore
	ref      *refDB
	pub      *ltxtest.Primary
	mu       sync.Mutex // guards images and sums for reader goroutines
	images   map[ltx.TXID][]byte
	sums     map[ltx.TXID]ltx.Checksum
	path     string // the replica's local file
	logs     *testtool.Buffer
}

func newWorld(t testing.TB, pageSize int, noChecksum bool) *world {
	t.Helper()
	dir := t.TempDir()
	w := &world{
		t: t, dir: dir, storeDir: filepath.Join(dir, "store"),
		images: map[ltx.TXID][]byte{}, sums: map[ltx.TXID]ltx.Checksum{},
		path: filepath.Join(dir, "replica.db"), logs: &testtool.Buffer{},
	}
	w.source = "file://" + w.storeDir
	if err := os.MkdirAll(w.storeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	w.st = w.openStore()
	w.ref = newRefDB(t, dir, pageSize)
	w.pub = &ltxtest.Primary{Store: w.st, PageSize: uint32(pageSize), NoChecksum: noChecksum}
	w.advance(w.ref.image())
	return w
}

func (w *world) openStore() *store.FileStore {
	w.t.Helper()
	st, err := store.OpenFile(w.storeDir)
	if err != nil {
		w.t.Fatal(err)
	}
	return st
}

// advance records the reference's current file as the next TXID without
// publishing anything.
func (w *world) advance(img []byte) ltx.TXID {
	txid := w.pub.TXID + 1
	w.pub.Advance(img, txid)
	w.mu.Lock()
	w.images[txid] = w.pub.Image
	w.sums[txid] = w.pub.Checksum
	w.mu.Unlock()
	return txid
}

// image is the primary's image at txid, safe to call from any goroutine.
func (w *world) image(txid ltx.TXID) []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.images[txid]
}

// commit publishes the reference's current file as the next TXID at L0.
func (w *world) commit() ltx.TXID {
	w.t.Helper()
	prev := w.pub.TXID
	txid := w.advance(w.ref.image())
	w.put(0, w.encode(prev+1, txid))
	return txid
}

// encode is the LTX file that takes the image at minTXID-1 to the image at
// maxTXID (a snapshot when minTXID is 1).
func (w *world) encode(minTXID, maxTXID ltx.TXID) []byte {
	w.t.Helper()
	prev := w.images[minTXID-1]
	return ltxtest.Encode(w.t, prev, w.images[maxTXID], w.pub.PageSize, minTXID, maxTXID,
		w.sums[minTXID-1], w.pub.NoChecksum, time.Now())
}

// put writes an LTX file into the store the way a producer does (temporary
// name, then rename), without the fsyncs of store.Put: the tests that write
// thousands of files would spend most of their time syncing.
func (w *world) put(level int, data []byte) store.FileInfo {
	w.t.Helper()
	hdr, _, err := ltx.DecodeHeader(bytes.NewReader(data))
	if err != nil {
		w.t.Fatal(err)
	}
	fi := store.FileInfo{Level: level, MinTXID: hdr.MinTXID, MaxTXID: hdr.MaxTXID}
	w.writeRaw(fi, data)
	return fi
}

func (w *world) filePath(fi store.FileInfo) string {
	return filepath.Join(w.storeDir, "ltx", fmt.Sprint(fi.Level), fi.Name())
}

// writeRaw puts bytes under a file's name, whatever they are.
func (w *world) writeRaw(fi store.FileInfo, data []byte) {
	w.t.Helper()
	p := w.filePath(fi)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		w.t.Fatal(err)
	}
	tmp := filepath.Join(filepath.Dir(p), "."+fi.Name()+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		w.t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) remove(fi store.FileInfo) {
	w.t.Helper()
	if err := os.Remove(w.filePath(fi)); err != nil {
		w.t.Fatal(err)
	}
}

func l0(txid ltx.TXID) store.FileInfo {
	return store.FileInfo{Level: 0, MinTXID: txid, MaxTXID: txid}
}

// snapshot publishes the current image as a level-9 snapshot.
func (w *world) snapshot() store.FileInfo {
	w.t.Helper()
	return w.put(store.SnapshotLevel, w.encode(1, w.pub.TXID))
}

func (w *world) openReplica() *Replica {
	w.t.Helper()
	r, err := Open(w.path, w.source)
	if err != nil {
		w.t.Fatal(err)
	}
	return r
}

// bootstrapped publishes the current image as a snapshot and returns a
// replica bootstrapped from it by a manual follower (closed at cleanup).
func (w *world) bootstrapped() (*Replica, *Follower) {
	w.t.Helper()
	w.snapshot()
	r := w.openReplica()
	w.t.Cleanup(func() { r.Close() })
	f := w.manual(r)
	mustStep(w.t, f)
	return r, f
}

// manual is a Follower driven step by step from the test goroutine, so that
// what it has applied at each check is exact (no goroutine, no interval).
func (w *world) manual(r *Replica) *Follower {
	return &Follower{
		r: r, st: w.st, interval: time.Hour, log: slog.New(slog.NewTextHandler(w.logs, nil)),
		bad: make(map[store.FileKey]badFile), ready: make(chan struct{}), done: make(chan struct{}),
	}
}

// follow starts a real Follower (its own goroutine) and stops it at cleanup.
func (w *world) follow(r *Replica, st store.Store) *Follower {
	f := Follow(r, st, Options{Interval: 5 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(w.logs, nil))})
	w.t.Cleanup(f.Close)
	return f
}

func step(t testing.TB, f *Follower) error {
	t.Helper()
	return f.step(context.Background())
}

func mustStep(t testing.TB, f *Follower) {
	t.Helper()
	if err := step(t, f); err != nil {
		t.Fatalf("step: %v", err)
	}
}

// waitTXID waits until the replica's head is txid.
func waitTXID(t testing.TB, r *Replica, f *Follower, txid ltx.TXID) {
	t.Helper()
	testtool.Eventually(t, fmt.Sprintf("TXID %d", txid), 15*time.Second, func() error {
		if h := r.Head(); h == nil {
			return fmt.Errorf("no version yet; follower status: %+v", f.Status())
		} else if h.TXID != txid {
			return fmt.Errorf("replica at TXID %d; follower status: %+v", h.TXID, f.Status())
		}
		return nil
	})
}

// headerExempt says whether byte i of page 1 is one walrust patches.
func headerExempt(i int) bool {
	return i == 18 || i == 19 || (i >= 24 && i < 32) || (i >= 92 && i < 96)
}

// checkVersion compares a version, read page by page through ReadAt, with a
// database image: every byte except those walrust patches, and the size.
// It also checks the patched header itself.
func checkVersion(t testing.TB, v *Version, img []byte, what string) {
	t.Helper()
	ps := int(v.PageSize)
	if v.Size() != int64(len(img)) {
		t.Fatalf("%s: TXID %d serves %d bytes, reference has %d", what, v.TXID, v.Size(), len(img))
	}
	buf := make([]byte, ps)
	for pgno := 1; pgno*ps <= len(img); pgno++ {
		n, err := v.ReadAt(buf, int64(pgno-1)*int64(ps))
		if err != nil || n != ps {
			t.Fatalf("%s: read page %d: n=%d err=%v", what, pgno, n, err)
		}
		want := img[(pgno-1)*ps : pgno*ps]
		if pgno == 1 {
			checkHeader(t, v, buf, what)
			for i := range want {
				if !headerExempt(i) && buf[i] != want[i] {
					t.Fatalf("%s: TXID %d page 1 byte %d = %#x, want %#x", what, v.TXID, i, buf[i], want[i])
				}
			}
			continue
		}
		if !bytes.Equal(buf, want) {
			t.Fatalf("%s: TXID %d page %d differs from the reference (first diff at %d)", what, v.TXID, pgno, firstDiff(buf, want))
		}
	}
	// A read past the end is a short read that zero-fills.
	for i := range buf {
		buf[i] = 0xAA
	}
	n, err := v.ReadAt(buf, int64(len(img)))
	if n != 0 || err != io.EOF || buf[0] != 0 || buf[ps-1] != 0 {
		t.Fatalf("%s: read past the end: n=%d err=%v, buffer not zeroed", what, n, err)
	}
}

// checkHeader checks the served form of page 1: a rollback-journal database
// whose change counter and version-valid-for are the version's counter and
// whose size in pages is the commit.
func checkHeader(t testing.TB, v *Version, p1 []byte, what string) {
	t.Helper()
	if p1[18] != 1 || p1[19] != 1 {
		t.Fatalf("%s: file format bytes %d,%d; want 1,1", what, p1[18], p1[19])
	}
	c24, c28, c92 := binary.BigEndian.Uint32(p1[24:]), binary.BigEndian.Uint32(p1[28:]), binary.BigEndian.Uint32(p1[92:])
	if c24 != v.Counter || c92 != v.Counter || c28 != v.Commit {
		t.Fatalf("%s: header counter %d, valid-for %d, size %d; want %d, %d, %d", what, c24, c92, c28, v.Counter, v.Counter, v.Commit)
	}
	// A partial read of the header is patched too.
	part := make([]byte, 8)
	if _, err := v.ReadAt(part, 24); err != nil {
		t.Fatalf("%s: partial header read: %v", what, err)
	}
	if binary.BigEndian.Uint32(part) != v.Counter || binary.BigEndian.Uint32(part[4:]) != v.Commit {
		t.Fatalf("%s: partial header read %x; want counter %d commit %d", what, part, v.Counter, v.Commit)
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// checkHead pins the head, checks it is txid and equals its image.
func (w *world) checkHead(r *Replica, txid ltx.TXID, what string) {
	w.t.Helper()
	v, err := r.Pin()
	if err != nil {
		w.t.Fatalf("%s: pin: %v", what, err)
	}
	defer v.Unpin()
	if v.TXID != txid {
		w.t.Fatalf("%s: head TXID %d, want %d", what, v.TXID, txid)
	}
	checkVersion(w.t, v, w.images[txid], what)
}

// checkBase compares the local file itself with the image at txid, as a
// plain sqlite3 process would read it: after a fold with no reader pinned,
// the file is that TXID, with the served header.
func (w *world) checkBase(txid ltx.TXID, what string) {
	w.t.Helper()
	st, err := readState(w.path)
	if err != nil || st == nil {
		w.t.Fatalf("%s: state: %v", what, err)
	}
	if st.TXID != txid {
		w.t.Fatalf("%s: state file at TXID %d, want %d", what, st.TXID, txid)
	}
	got, err := os.ReadFile(w.path)
	if err != nil {
		w.t.Fatal(err)
	}
	want := w.images[txid]
	if len(got) != len(want) {
		w.t.Fatalf("%s: base file is %d bytes, want %d", what, len(got), len(want))
	}
	for i := range want {
		if i < 100 && headerExempt(i) {
			continue
		}
		if got[i] != want[i] {
			w.t.Fatalf("%s: base file byte %d (page %d) = %#x, want %#x", what, i, i/int(w.pub.PageSize)+1, got[i], want[i])
		}
	}
	if c := binary.BigEndian.Uint32(got[24:]); c != st.Counter || binary.BigEndian.Uint32(got[92:]) != c {
		w.t.Fatalf("%s: base file counter %d, state says %d", what, c, st.Counter)
	}
	if got[18] != 1 || got[19] != 1 {
		w.t.Fatalf("%s: base file is not a rollback-journal database", what)
	}
}

// segments counts the files in the replica's log directory.
func segments(t testing.TB, r *Replica) int {
	t.Helper()
	entries, err := os.ReadDir(r.logDir)
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// logContains says whether a follower's log has s in it.
func logContains(l *testtool.Buffer, s string) bool { return strings.Contains(l.String(), s) }

// applyFile applies an LTX file under the name its own header gives (the
// tests that check names against headers call Apply themselves).
func applyFile(r *Replica, data []byte) (*Version, error) {
	return r.Apply(context.Background(), bytes.NewReader(data), wantOf(data, false))
}

// stageFile stages a snapshot under the name its own header gives.
func stageFile(r *Replica, data []byte) (*Staged, error) {
	return r.StageSnapshot(context.Background(), bytes.NewReader(data), wantOf(data, true))
}

func wantOf(data []byte, snapshot bool) ltxguard.Want {
	hdr, _, _ := ltx.DecodeHeader(bytes.NewReader(data))
	return ltxguard.Want{MinTXID: hdr.MinTXID, MaxTXID: hdr.MaxTXID, Snapshot: snapshot}
}
