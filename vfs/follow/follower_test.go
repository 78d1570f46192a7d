package follow

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/replica"
	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/worldtest"
)

// insertRows adds n rows of size bytes in one transaction.
func (w *world) insertRows(n, size int) {
	w.T.Helper()
	w.Ref.Tx(func(tx *sql.Tx) {
		for range n {
			if _, err := tx.Exec("INSERT INTO t (k, v) VALUES (?, ?)", "r", worldtest.Blob(int(w.Pub.TXID)*1000+n, size)); err != nil {
				w.T.Fatal(err)
			}
		}
	})
}

// gapSetup bootstraps a replica, applies TXIDs 2..5 (2..3 folded, 4..5
// still in the log), pins TXID 5, and then lets the primary make TXIDs
// 6..10 — deleting most rows and VACUUMing on the way, so that the size
// changes too — published at L0.
func gapSetup(t *testing.T) (w *world, r *replica.Replica, f *Follower, pinned *replica.Version) {
	w = newWorld(t, 1024, false)
	w.Snapshot()
	r = w.openReplica()
	t.Cleanup(func() { r.Close() })
	f = w.manual(r)
	mustStep(t, f)
	w.InsertRows(200, 300)
	w.Commit() // 2
	w.InsertRows(5, 500)
	w.Commit() // 3
	mustStep(t, f)
	w.checkBase(3, "setup")
	for range 2 {
		w.InsertRows(5, 500)
		w.Commit()
		if _, err := applyFile(r, w.Encode(w.Pub.TXID, w.Pub.TXID)); err != nil {
			t.Fatal(err)
		}
	}
	pinned, err := r.Pin()
	if err != nil {
		t.Fatal(err)
	}
	if pinned.TXID != 5 || pinned.PagesApplied() == 0 {
		t.Fatalf("pinned TXID %d (%d pages in the log); want an unfolded TXID 5", pinned.TXID, pinned.PagesApplied())
	}
	w.Ref.Exec("DELETE FROM t WHERE id > 50")
	w.Commit() // 6
	w.Ref.Exec("VACUUM")
	w.Commit() // 7
	for range 3 {
		w.InsertRows(3, 200)
		w.Commit() // 8..10
	}
	return w, r, f, pinned
}

// checkPinnedThenNew: the reader pinned at TXID 5 still reads TXID 5, size
// and content; a new pin reads want; after the unpin everything folds.
func checkPinnedThenNew(t *testing.T, w *world, r *replica.Replica, f *Follower, pinned *replica.Version, want ltx.TXID) {
	t.Helper()
	checkVersion(t, pinned, w.Image(5), "pinned reader")
	if pinned.Size() == r.Head().Size() {
		t.Fatalf("size did not change across the gap (%d): the test proves nothing", pinned.Size())
	}
	w.checkHead(r, want, "new pin")
	// Unpinning lets the next fold bring the file to the head.
	pinned.Unpin()
	mustStep(t, f)
	w.checkBase(want, "after unpin")
	if n := segments(t, r); n != 0 {
		t.Fatalf("%d segments left", n)
	}
}

// TestGapBridgedByCompaction: L0 files the replica has not applied are
// deleted (retention) and an L1 compaction covers them; the replica
// follows the L1 file and then L0 again, without a new bootstrap, even
// though a newer snapshot exists, while a pinned reader keeps its TXID.
func TestGapBridgedByCompaction(t *testing.T) {
	w, r, f, pinned := gapSetup(t)
	w.Put(1, w.Encode(6, 8))
	for txid := ltx.TXID(6); txid <= 8; txid++ {
		w.Remove(worldtest.L0(txid))
	}
	w.Snapshot() // at 10: must not be downloaded, the chain reaches 10
	gets := w.Store.Stats().Gets
	mustStep(t, f)
	if got := f.Status().Bootstraps; got != 1 {
		t.Fatalf("bootstraps = %d, want 1 (the L1 file bridges the gap)", got)
	}
	if g := w.Store.Stats().Gets - gets; g != 3 {
		t.Fatalf("%d files downloaded, want 3 (L1 6-8, L0 9, L0 10)", g)
	}
	checkPinnedThenNew(t, w, r, f, pinned, 10)
}

// TestGapThenSnapshot: the L0 files after the replica's TXID are gone and
// nothing covers them. The replica stays at its TXID and says why; once a
// newer snapshot appears it re-bootstraps, while a reader pinned before
// keeps reading the old base file (unlinked, still open) until it unpins.
func TestGapThenSnapshot(t *testing.T) {
	w, r, f, pinned := gapSetup(t)
	for txid := ltx.TXID(6); txid <= 8; txid++ {
		w.Remove(worldtest.L0(txid))
	}
	err := step(t, f)
	if err == nil || !strings.Contains(err.Error(), "gap") || !strings.Contains(err.Error(), "TXID 0000000000000006") {
		t.Fatalf("step over a gap: %v; want a gap error naming TXID 6", err)
	}
	if r.Head().TXID != 5 {
		t.Fatalf("head moved to %d across a gap", r.Head().TXID)
	}
	w.checkHead(r, 5, "stuck at the gap")

	w.Snapshot() // at 10
	mustStep(t, f)
	if got := f.Status().Bootstraps; got != 2 {
		t.Fatalf("bootstraps = %d, want 2", got)
	}
	if pinned.Counter >= r.Head().Counter {
		t.Fatalf("counter %d after re-bootstrap is not above the old %d", r.Head().Counter, pinned.Counter)
	}
	before, err := os.Stat(r.Path())
	if err != nil {
		t.Fatal(err)
	}
	checkPinnedThenNew(t, w, r, f, pinned, 10)
	// The snapshot was folded into the same file, not renamed over it, so
	// other processes that hold it open see the new state too.
	after, err := os.Stat(r.Path())
	if err != nil || !os.SameFile(before, after) {
		t.Fatalf("base file replaced (%v) instead of folded into", err)
	}
	if left, _ := filepath.Glob(filepath.Join(logDir(r.Path()), "*"+".staged")); len(left) > 0 {
		t.Fatalf("staged snapshot left after the fold: %v", left)
	}
}

// TestOverlappingCompaction: an L1 file that starts before the head (a
// compaction of 4..9 when the replica is at 6) holds the final image of
// every page it touches, and is applied on top of TXID 6 — with database
// checksums verified across the overlap, and without them (Litestream).
func TestOverlappingCompaction(t *testing.T) {
	for _, noChecksum := range []bool{false, true} {
		t.Run(fmt.Sprintf("nochecksum=%v", noChecksum), func(t *testing.T) {
			w := newWorld(t, 4096, noChecksum)
			w.Snapshot()
			r := w.openReplica()
			defer r.Close()
			f := w.manual(r)
			mustStep(t, f)
			for i := range 5 {
				w.InsertRows(3, 1500+i*900) // 2..6, some pages only changed before the head
				w.Commit()
			}
			mustStep(t, f)
			w.checkHead(r, 6, "before")
			w.Ref.Exec("UPDATE t SET v = ? WHERE id = 2", worldtest.Blob(77, 9000))
			w.Advance(w.Ref.Image()) // 7
			w.Ref.Exec("DELETE FROM t WHERE id % 2 = 0")
			w.Advance(w.Ref.Image()) // 8
			w.InsertRows(2, 100)
			w.Advance(w.Ref.Image()) // 9
			w.Put(1, w.Encode(4, 9))
			w.InsertRows(1, 100)
			w.Commit() // 10 at L0; 7..9 never at L0
			mustStep(t, f)
			w.checkHead(r, 10, "after overlap")
			w.checkBase(10, "after overlap")
			if st := f.Status(); st.FilesApplied != 1+5+2 {
				t.Fatalf("files applied %d, want 8", st.FilesApplied)
			}
		})
	}
}

// TestManyFiles follows 2000 small commits with a real Follower running at
// a 5ms interval, comparing with the reference at checkpoints, and checks
// that folds happen along the way and leave the file at the head.
func TestManyFiles(t *testing.T) {
	const n = 2000
	w := newWorld(t, 1024, true)
	w.Snapshot()
	r := w.openReplica()
	t.Cleanup(func() { r.Close() }) // after the follower's Close
	f := w.follow(r, w.Store)
	if err := f.WaitReady(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	sawFold := false
	for i := 1; i <= n; i++ {
		switch {
		case i%100 == 0:
			w.Ref.Exec("DELETE FROM t WHERE id % 10 = ?", i/100%10)
		case i%10 == 0:
			w.Ref.Exec("UPDATE t SET v = ? WHERE id = (SELECT max(id) FROM t)", worldtest.Blob(i, 50+i%300))
		default:
			w.Ref.Exec("INSERT INTO t (k, v) VALUES (?, ?)", fmt.Sprint(i), worldtest.Blob(i, 20+i%200))
		}
		txid := w.Commit()
		if i%250 == 0 {
			waitTXID(t, r, f, txid)
			w.checkHead(r, txid, fmt.Sprintf("commit %d", i))
			if st, _ := replica.ReadState(w.Path); st != nil && st.TXID > 1 && st.TXID < ltx.TXID(n) {
				sawFold = true
			}
		}
	}
	waitTXID(t, r, f, n+1)
	f.Close()
	if _, err := r.Fold(); err != nil {
		t.Fatal(err)
	}
	w.checkHead(r, n+1, "end")
	w.checkBase(n+1, "end")
	if !sawFold {
		t.Fatal("no fold happened while following")
	}
	st := f.Status()
	if st.LastError != "" || st.FilesApplied != n+1 {
		t.Fatalf("status %+v; want %d files and no error", st, n+1)
	}
	if segments(t, r) != 0 {
		t.Fatalf("%d segments left", segments(t, r))
	}
}

// TestRestart closes follower and replica, lets the store move on (L0
// files, then an L1 compaction whose L0 files are already gone), and
// reopens: the replica continues from its own file — the snapshot is
// deleted from the store, so downloading it again is impossible — and the
// store sees exactly the GETs of the files after the replica's TXID.
func TestRestart(t *testing.T) {
	w := newWorld(t, 4096, false)
	snap := w.Snapshot()
	r := w.openReplica()
	f := w.follow(r, w.Store)
	for range 9 {
		w.InsertRows(4, 700)
		w.Commit()
	}
	waitTXID(t, r, f, 10)
	f.Close()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	w.Remove(snap)
	for range 10 {
		w.InsertRows(2, 900)
		w.Commit() // 11..20
	}
	w.Put(1, w.Encode(11, 15))
	for txid := ltx.TXID(11); txid <= 15; txid++ {
		w.Remove(worldtest.L0(txid))
	}

	st := w.OpenStore()
	r, err := replica.Open(w.Path, w.Source)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() }) // after the follower's Close
	w.checkHead(r, 10, "reopened")
	f = w.follow(r, st)
	if err := f.WaitReady(time.Second); err != nil {
		t.Fatalf("a reopened replica is ready at once: %v", err)
	}
	waitTXID(t, r, f, 20)
	w.checkHead(r, 20, "caught up after restart")
	if g := st.Stats().Gets; g != 6 {
		t.Fatalf("%d GETs after restart, want 6 (L1 11-15, L0 16..20)", g)
	}
	for range 3 {
		w.InsertRows(1, 100)
		w.Commit()
	}
	waitTXID(t, r, f, 23)
	w.checkHead(r, 23, "continued")
	if s := f.Status(); s.Bootstraps != 0 || s.LastError != "" {
		t.Fatalf("status after restart: %+v", s)
	}
	if g := st.Stats().Gets; g != 9 {
		t.Fatalf("%d GETs, want 9", g)
	}
}

// TestBadFiles: a truncated file and a file with a flipped byte are
// rejected and logged, the replica keeps its last good TXID and keeps
// saying which file is wrong, and it moves on when a good file covering
// the next TXID appears at a higher level, or a newer snapshot.
func TestBadFiles(t *testing.T) {
	w := newWorld(t, 4096, true)
	r, f := w.bootstrapped()
	w.InsertRows(3, 2000)
	w.Commit() // 2
	mustStep(t, f)

	// Truncated L0 3, fixed by an L1 file 3..3.
	w.InsertRows(3, 2000)
	txid := w.Advance(w.Ref.Image())
	good := w.Encode(txid, txid)
	w.WriteRaw(worldtest.L0(txid), good[:len(good)/2])
	for i := range 2 {
		err := step(t, f)
		if err == nil || !strings.Contains(err.Error(), worldtest.L0(txid).Name()) {
			t.Fatalf("poll %d over a truncated file: %v; want an error naming %s", i, err, worldtest.L0(txid).Name())
		}
		w.checkHead(r, 2, "truncated file")
	}
	if !logContains(w.Logs, "rejected") || !logContains(w.Logs, worldtest.L0(txid).Name()) {
		t.Fatalf("rejection not logged:\n%s", w.Logs)
	}
	w.Put(1, good)
	mustStep(t, f)
	w.checkHead(r, 3, "good L1 file")

	// Flipped byte in L0 4, fixed by a snapshot at 5.
	w.InsertRows(3, 2000)
	txid = w.Advance(w.Ref.Image())
	w.WriteRaw(worldtest.L0(txid), worldtest.Flip(w.Encode(txid, txid), 200))
	if err := step(t, f); err == nil || !strings.Contains(err.Error(), worldtest.L0(txid).Name()) {
		t.Fatalf("poll over a corrupt file: %v", err)
	}
	w.checkHead(r, 3, "corrupt file")
	w.InsertRows(3, 2000)
	w.Advance(w.Ref.Image())
	w.Snapshot()
	mustStep(t, f)
	w.checkHead(r, 5, "newer snapshot")
}

// TestBadSnapshot: the newest snapshot is corrupt; bootstrap rejects it and
// falls back to the older snapshot plus the L0 chain.
func TestBadSnapshot(t *testing.T) {
	w := newWorld(t, 1024, false)
	w.InsertRows(20, 300)
	w.Advance(w.Ref.Image())
	w.Snapshot() // 2
	for range 3 {
		w.InsertRows(5, 300)
		w.Commit() // 3..5
	}
	newest := w.Encode(1, 5)
	fi := store.FileInfo{Level: store.SnapshotLevel, MinTXID: 1, MaxTXID: 5}
	w.WriteRaw(fi, worldtest.Flip(newest, len(newest)-30))
	r := w.openReplica()
	defer r.Close()
	f := w.manual(r)
	if err := step(t, f); err == nil || !strings.Contains(err.Error(), fi.Name()) {
		t.Fatalf("bootstrap from a corrupt snapshot: %v", err)
	}
	if r.Head() != nil {
		t.Fatal("a corrupt snapshot was installed")
	}
	if left, _ := filepath.Glob(filepath.Join(logDir(r.Path()), "*snapshot*")); len(left) > 0 {
		t.Fatalf("rejected staged snapshot left behind: %v", left)
	}
	mustStep(t, f)
	w.checkHead(r, 5, "older snapshot + L0")
	mustStep(t, f) // a bootstrap step does not fold; the next one does
	w.checkBase(5, "older snapshot + L0")
}

// TestPageSizeChange: the store restarts from a snapshot with another page
// size at a higher TXID, and the old L0 files are gone. The replica
// re-bootstraps to the new page size.
func TestPageSizeChange(t *testing.T) {
	w := newWorld(t, 4096, false)
	r, f := w.bootstrapped()
	for range 4 {
		w.InsertRows(3, 900)
		w.Commit() // 2..5
	}
	mustStep(t, f)
	pinned, err := r.Pin()
	if err != nil {
		t.Fatal(err)
	}
	for txid := ltx.TXID(2); txid <= 5; txid++ {
		w.Remove(worldtest.L0(txid))
	}

	// A new primary with 1024-byte pages, TXIDs 6.. in the same store.
	w.Ref = worldtest.NewRefDB(t, filepath.Join(t.TempDir(), "primary.db"), 1024)
	w.InsertRows(30, 400)
	w.Pub.PageSize = 1024
	w.Advance(w.Ref.Image()) // 6
	w.InsertRows(30, 400)
	w.Advance(w.Ref.Image()) // 7
	w.Snapshot()
	w.InsertRows(1, 10)
	w.Commit() // 8
	mustStep(t, f)
	if ps := r.Head().PageSize; ps != 1024 {
		t.Fatalf("page size %d after re-bootstrap, want 1024", ps)
	}
	w.checkHead(r, 8, "new page size")
	checkVersion(t, pinned, w.Image(5), "pinned at the old page size")
	pinned.Unpin()
	mustStep(t, f)
	w.checkBase(8, "new page size")
}

// TestBadFileWrittenAgain: a file rejected for a flipped byte is written
// again under the same name, with the same size, by a producer that fixed
// it. The copy that failed stays rejected, but the new copy (another
// ModTime in the listing) is downloaded and applied.
func TestBadFileWrittenAgain(t *testing.T) {
	w := newWorld(t, 4096, true)
	r, f := w.bootstrapped()

	w.InsertRows(3, 2000)
	txid := w.Advance(w.Ref.Image())
	good := w.Encode(txid, txid)
	w.WriteRaw(worldtest.L0(txid), worldtest.Flip(good, 200))
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(w.FilePath(worldtest.L0(txid)), old, old); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := step(t, f); err == nil {
			t.Fatal("poll over a corrupt file: no error")
		}
		w.checkHead(r, 1, "corrupt file")
	}
	downloads := w.Store.Stats().Gets
	if err := step(t, f); err == nil {
		t.Fatal("poll over the same corrupt copy: no error")
	}
	if d := w.Store.Stats().Gets - downloads; d != 0 {
		t.Errorf("the rejected copy was downloaded %d more times", d)
	}

	w.WriteRaw(worldtest.L0(txid), good) // same name, same size, written now
	mustStep(t, f)
	w.checkHead(r, txid, "the file written again")
}

// TestHeadDuringFirstInstall: Head and Pin may be called at any time, also
// while the follower installs the first snapshot (run with -race: the
// install publishes the root version under the replica's lock).
func TestHeadDuringFirstInstall(t *testing.T) {
	w := newWorld(t, 4096, true)
	w.InsertRows(7, 500)
	w.Advance(w.Ref.Image())
	w.Snapshot()
	r := w.openReplica()
	defer r.Close()
	done := make(chan struct{})
	watched := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-done:
				watched <- n
				return
			default:
			}
			if h := r.Head(); h != nil {
				if v, err := r.Pin(); err == nil {
					v.Unpin()
				}
			}
			n++
		}
	}()
	f := w.follow(r, w.Store)
	if err := f.WaitReady(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	close(done)
	if n := <-watched; n == 0 {
		t.Fatal("the watcher never looked")
	}
	w.checkHead(r, w.Pub.TXID, "after the first install")
}
