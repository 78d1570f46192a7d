package replica

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/ltxtest"
	"github.com/walrust/walrust/vfs/testkit/worldtest"
)

// TestMatchesSQLite follows a real SQLite database through inserts, rows
// bigger than a page (overflow chains), updates, deletes, growth across
// hundreds of pages and a VACUUM that shrinks it, for each page size. After
// every commit the replica's head must equal the reference file page by
// page, and — once folded with no reader pinned — so must the local file
// itself. A reader pinned in the middle keeps its TXID through later
// commits and folds.
func TestMatchesSQLite(t *testing.T) {
	for _, ps := range []int{512, 1024, 4096, 65536} {
		for _, noChecksum := range []bool{false, true} {
			if ps == 65536 && noChecksum {
				continue // one 64K run is enough for the time budget
			}
			name := fmt.Sprintf("page%d", ps)
			if noChecksum {
				name += "-nochecksum"
			}
			t.Run(name, func(t *testing.T) { testMatchesSQLite(t, ps, noChecksum) })
		}
	}
}

func testMatchesSQLite(t *testing.T, ps int, noChecksum bool) {
	w := newWorld(t, ps, noChecksum)
	r, f := w.bootstrapped()
	w.checkHead(r, 1, "bootstrap")
	w.checkBase(1, "bootstrap")

	manyRows := 900
	if ps == 65536 {
		manyRows = 120
	}
	type change struct {
		name string
		fn   func(tx *sql.Tx)
	}
	ins := func(tx *sql.Tx, id int, size int) {
		if _, err := tx.Exec("INSERT INTO t (id, k, v) VALUES (?, ?, ?)", id, fmt.Sprintf("k%06d", id), worldtest.Blob(id, size)); err != nil {
			t.Fatal(err)
		}
	}
	run := func(tx *sql.Tx, q string, args ...any) {
		if _, err := tx.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	changes := []change{
		{"small rows", func(tx *sql.Tx) {
			for i := 1; i <= 50; i++ {
				ins(tx, i, 20+i)
			}
		}},
		{"overflow rows", func(tx *sql.Tx) {
			for i := 100; i < 105; i++ {
				ins(tx, i, 3*ps+i)
			}
		}},
		{"update small to overflow and back", func(tx *sql.Tx) {
			run(tx, "UPDATE t SET v = ? WHERE id = 7", worldtest.Blob(7000, 2*ps+17))
			run(tx, "UPDATE t SET v = ? WHERE id = 101", worldtest.Blob(101, 5))
		}},
		{"delete rows", func(tx *sql.Tx) {
			run(tx, "DELETE FROM t WHERE id % 3 = 0")
			run(tx, "DELETE FROM t WHERE id = 102")
		}},
		{"many pages", func(tx *sql.Tx) {
			for i := 1000; i < 1000+manyRows; i++ {
				ins(tx, i, ps/3)
			}
		}},
		{"update across pages", func(tx *sql.Tx) {
			run(tx, "UPDATE t SET k = 'u' || k WHERE id % 7 = 1")
		}},
		{"second table", func(tx *sql.Tx) {
			run(tx, "CREATE TABLE u (a, b)")
			run(tx, "INSERT INTO u SELECT id, v FROM t WHERE id % 5 = 0")
		}},
		{"drop and delete most", func(tx *sql.Tx) {
			run(tx, "DROP TABLE u")
			run(tx, "DELETE FROM t WHERE id > 20")
		}},
	}

	var pinned *Version
	var pinnedTXID ltx.TXID
	lastCounter := r.Head().Counter
	for i, c := range changes {
		w.Ref.Tx(c.fn)
		txid := w.Commit()
		if i == 2 {
			// Apply without folding and pin it: a reader on a version that
			// is neither the root nor folded, across the next three commits.
			if _, err := applyFile(r, w.Encode(txid, txid)); err != nil {
				t.Fatal(err)
			}
			var err error
			if pinned, err = r.Pin(); err != nil {
				t.Fatal(err)
			}
			pinnedTXID = pinned.TXID
			if pinnedTXID != txid || r.root == pinned {
				t.Fatalf("pinned TXID %d (root %v); want the unfolded %d", pinnedTXID, r.root == pinned, txid)
			}
		} else {
			mustStep(t, f)
		}
		w.checkHead(r, txid, c.name)
		if h := r.Head(); h.Counter <= lastCounter {
			t.Fatalf("%s: change counter %d did not move past %d", c.name, h.Counter, lastCounter)
		} else {
			lastCounter = h.Counter
		}
		if pinned != nil {
			// The pinned reader still sees its TXID, and the fold stopped there.
			checkVersion(t, pinned, w.Image(pinnedTXID), c.name+" (pinned reader)")
			if i > 2 {
				w.checkBase(pinnedTXID, c.name+" (fold held at the pinned version)")
				if n := segments(t, r); n == 0 {
					t.Fatalf("%s: versions after the pinned one were folded", c.name)
				}
			}
		} else {
			w.checkBase(txid, c.name)
			if n := segments(t, r); n != 0 {
				t.Fatalf("%s: %d segments left after a full fold", c.name, n)
			}
		}
		switch i {
		case 5:
			pinned.Unpin()
			pinned = nil
			mustStep(t, f) // nothing new: only the fold
			w.checkBase(txid, c.name+" (after unpin)")
		}
	}

	// VACUUM shrinks the database: the served size and the file shrink.
	before := r.Head().Commit
	w.Ref.Exec("VACUUM")
	txid := w.Commit()
	mustStep(t, f)
	w.checkHead(r, txid, "vacuum")
	if after := r.Head().Commit; after >= before {
		t.Fatalf("VACUUM: commit %d, was %d; want it to shrink", after, before)
	}
	w.checkBase(txid, "vacuum")

	// And it grows again past its old end.
	w.Ref.Tx(func(tx *sql.Tx) {
		for i := 5000; i < 5000+manyRows/2; i++ {
			ins(tx, i, ps/2)
		}
	})
	txid = w.Commit()
	mustStep(t, f)
	w.checkHead(r, txid, "regrow")
	w.checkBase(txid, "regrow")
}

// TestShrinkWhilePinned: a reader pinned before a VACUUM keeps its size and
// every page, including pages past the new end, while the replica serves
// and folds the shrunk database.
func TestShrinkWhilePinned(t *testing.T) {
	w := newWorld(t, 1024, false)
	w.Ref.Tx(func(tx *sql.Tx) {
		for i := range 400 {
			if _, err := tx.Exec("INSERT INTO t (id, k, v) VALUES (?, 'x', ?)", i, worldtest.Blob(i, 600)); err != nil {
				t.Fatal(err)
			}
		}
	})
	w.Advance(w.Ref.Image())
	r, f := w.bootstrapped()
	old, err := r.Pin()
	if err != nil {
		t.Fatal(err)
	}
	oldTXID := old.TXID
	w.Ref.Exec("DELETE FROM t WHERE id > 10")
	w.Commit()
	w.Ref.Exec("VACUUM")
	txid := w.Commit()
	mustStep(t, f)
	w.checkHead(r, txid, "after vacuum")
	checkVersion(t, old, w.Image(oldTXID), "pinned before vacuum")
	if old.Size() <= r.Head().Size() {
		t.Fatalf("pinned size %d not larger than the head's %d", old.Size(), r.Head().Size())
	}
	old.Unpin()
	mustStep(t, f)
	w.checkBase(txid, "after unpin")
	fi, err := os.Stat(w.Path)
	if err != nil || fi.Size() != int64(len(w.Image(txid))) {
		t.Fatalf("local file size %v, %v; want %d", fi.Size(), err, len(w.Image(txid)))
	}
}

// TestApplyRejects drives Apply directly: a file that does not continue the
// head, one already applied, one from another lineage (pre-apply checksum),
// one whose post-apply checksum is wrong and one with a flipped byte are
// all refused, and the head does not move.
func TestApplyRejects(t *testing.T) {
	w := newWorld(t, 4096, false)
	r, _ := w.bootstrapped()
	for i := range 3 {
		w.Ref.Exec("INSERT INTO t (k, v) VALUES (?, ?)", "a", worldtest.Blob(i, 3000))
		w.Advance(w.Ref.Image())
	}
	// Head is at 1; TXIDs 2..4 exist only as images.
	head := r.Head()
	good2 := w.Encode(2, 2)

	bad := map[string][]byte{
		"skips TXID 2":     w.Encode(3, 3),
		"wrong page size":  ltxtest.Encode(t, nil, make([]byte, 2*1024), 1024, 2, 2, 0, true, time.Now()),
		"flipped byte":     worldtest.Flip(good2, len(good2)/2),
		"truncated":        good2[:len(good2)-20],
		"wrong pre-apply":  ltxtest.Encode(t, w.Image(1), w.Image(2), 4096, 2, 2, w.Sum(1)^0x1234, false, time.Now()),
		"wrong post-apply": wrongPostApply(t, w, 2),
	}
	for name, data := range bad {
		if _, err := applyFile(r, data); err == nil {
			t.Errorf("%s: applied", name)
		} else if name == "wrong pre-apply" && !errors.Is(err, ErrChainBroken) {
			t.Errorf("%s: %v; want ErrChainBroken", name, err)
		}
		if r.Head() != head {
			t.Fatalf("%s: head moved to %d", name, r.Head().TXID)
		}
	}
	if n := segments(t, r); n != 0 {
		t.Fatalf("%d files left in the log by rejected applies", n)
	}
	if _, err := applyFile(r, good2); err != nil {
		t.Fatal(err)
	}
	if _, err := applyFile(r, good2); err == nil {
		t.Fatal("applied TXID 2 twice")
	}
	w.checkHead(r, 2, "after good file")
}

// wrongPostApply is a well-formed file for txid whose post-apply checksum
// claims a different result.
func wrongPostApply(t *testing.T, w *world, txid ltx.TXID) []byte {
	var buf bytes.Buffer
	enc, err := ltx.NewEncoder(&buf)
	if err != nil {
		t.Fatal(err)
	}
	img := w.Image(txid)
	ps := w.Pub.PageSize
	if err := enc.EncodeHeader(ltx.Header{
		Version: ltx.Version, PageSize: ps, Commit: uint32(len(img)) / ps,
		MinTXID: txid, MaxTXID: txid, Timestamp: time.Now().UnixMilli(), PreApplyChecksum: w.Sum(txid - 1),
	}); err != nil {
		t.Fatal(err)
	}
	for pgno := uint32(1); pgno <= uint32(len(img))/ps; pgno++ {
		if err := enc.EncodePage(ltx.PageHeader{Pgno: pgno}, img[(pgno-1)*ps:pgno*ps]); err != nil {
			t.Fatal(err)
		}
	}
	enc.SetPostApplyChecksum(w.Sum(txid) ^ 0x10)
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestReplayLog: versions applied but not folded when the process stops are
// replayed from the log at the next Open — a torn last segment is dropped
// and simply downloaded again — and the result equals the reference.
func TestReplayLog(t *testing.T) {
	w := newWorld(t, 1024, false)
	w.Snapshot()
	r := w.openReplica()
	f := w.manual(r)
	mustStep(t, f)
	for i := range 6 {
		w.Ref.Exec("INSERT INTO t (k, v) VALUES (?, ?)", fmt.Sprint(i), worldtest.Blob(i, 700+i*400))
		w.Commit()
	}
	// Apply without folding, as a process killed before its fold would.
	for txid := ltx.TXID(2); txid <= 7; txid++ {
		if _, err := applyFile(r, w.Encode(txid, txid)); err != nil {
			t.Fatal(err)
		}
	}
	w.checkHead(r, 7, "before restart")
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if n := logSegments(t, w.Path+"-replica-log"); n != 6 {
		t.Fatalf("%d segments in the log, want 6", n)
	}

	// Reopen: replayed and folded, served as TXID 7.
	r = w.openReplica()
	w.checkHead(r, 7, "after replay")
	w.checkBase(7, "after replay")
	// Counters handed out after a restart move past the one on disk.
	if st, _ := ReadState(w.Path); r.Head().Counter != st.Counter || st.Counter <= 1 {
		t.Fatalf("counter %d after replay, state says %d", r.Head().Counter, st.Counter)
	}
	r.Close()

	// Again, with the newest segment torn: TXID 8 is replayed up to 7 and
	// refetched from the store.
	w.Ref.Exec("UPDATE t SET v = ? WHERE id = 3", worldtest.Blob(99, 5000))
	w.Commit()
	r = w.openReplica()
	if _, err := applyFile(r, w.Encode(8, 8)); err != nil {
		t.Fatal(err)
	}
	r.Close()
	segs := mustGlob(t, filepath.Join(w.Path+"-replica-log", "*.pages"))
	if len(segs) != 1 || logSegments(t, w.Path+"-replica-log") != 1 {
		t.Fatalf("log files %v, want one holding one segment", segs)
	}
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(segs[0], worldtest.Flip(b, len(b)/3), 0o644); err != nil {
		t.Fatal(err)
	}
	r = w.openReplica()
	defer r.Close()
	w.checkHead(r, 7, "torn segment dropped")
	if n := len(mustGlob(t, filepath.Join(w.Path+"-replica-log", "*"))); n != 0 {
		t.Fatalf("torn segment not removed (%d files in the log)", n)
	}
	f = w.manual(r)
	mustStep(t, f)
	w.checkHead(r, 8, "refetched")
	w.checkBase(8, "refetched")
}

func mustGlob(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestOpenRefuses: a local file that walrust did not make is never touched,
// and a replica of one source cannot be reopened for another.
func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	content := worldtest.Blob(1, 8192)
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, "file:///x"); err == nil || !strings.Contains(err.Error(), "not made by walrust") {
		t.Fatalf("open over a foreign file: %v", err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, content) {
		t.Fatal("foreign file changed")
	}
	for _, p := range []string{statePath(path), path + "-replica-log", lockPath(path)} {
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("%s created next to a foreign file", p)
		}
	}

	w := newWorld(t, 4096, false)
	w.Snapshot()
	r := w.openReplica()
	mustStep(t, w.manual(r))
	r.Close()
	if _, err := Open(w.Path, "file:///elsewhere"); err == nil || !strings.Contains(err.Error(), w.Source) {
		t.Fatalf("open with another source: %v", err)
	}
	r, err := Open(w.Path, "")
	if err != nil {
		t.Fatalf("open without source: %v", err)
	}
	defer r.Close()
	if r.Source() != w.Source {
		t.Fatalf("source %q, want %q", r.Source(), w.Source)
	}
	w.checkHead(r, 1, "reopened without source")
}

var _ = store.SnapshotLevel
