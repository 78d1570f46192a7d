package replica

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/store"
)

// insertRows adds n rows of size bytes in one transaction.
func (w *world) insertRows(n, size int) {
	w.t.Helper()
	w.ref.tx(func(tx *sql.Tx) {
		for range n {
			if _, err := tx.Exec("INSERT INTO t (k, v) VALUES (?, ?)", "r", blob(int(w.pub.TXID)*1000+n, size)); err != nil {
				w.t.Fatal(err)
			}
		}
	})
}

// gapSetup bootstraps a replica, applies TXIDs 2..5 (2..3 folded, 4..5
// still in the log), pins TXID 5, and then lets the primary make TXIDs
// 6..10 — deleting most rows and VACUUMing on the way, so that the size
// changes too — published at L0.
func gapSetup(t *testing.T) (w *world, r *Replica, f *Follower, pinned *Version) {
	w = newWorld(t, 1024, false)
	w.snapshot()
	r = w.openReplica()
	t.Cleanup(func() { r.Close() })
	f = w.manual(r)
	mustStep(t, f)
	w.insertRows(200, 300)
	w.commit() // 2
	w.insertRows(5, 500)
	w.commit() // 3
	mustStep(t, f)
	w.checkBase(3, "setup")
	for range 2 {
		w.insertRows(5, 500)
		w.commit()
		if _, err := applyFile(r, w.encode(w.pub.TXID, w.pub.TXID)); err != nil {
			t.Fatal(err)
		}
	}
	pinned, err := r.Pin()
	if err != nil {
		t.Fatal(err)
	}
	if pinned.TXID != 5 || pinned.seg == nil {
		t.Fatalf("pinned TXID %d (segment %v); want an unfolded TXID 5", pinned.TXID, pinned.seg != nil)
	}
	w.ref.exec("DELETE FROM t WHERE id > 50")
	w.commit() // 6
	w.ref.exec("VACUUM")
	w.commit() // 7
	for range 3 {
		w.insertRows(3, 200)
		w.commit() // 8..10
	}
	return w, r, f, pinned
}

// checkPinnedThenNew: the reader pinned at TXID 5 still reads TXID 5, size
// and content; a new pin reads want; after the unpin everything folds.
func checkPinnedThenNew(t *testing.T, w *world, r *Replica, f *Follower, pinned *Version, want ltx.TXID) {
	t.Helper()
	checkVersion(t, pinned, w.images[5], "pinned reader")
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
	w.put(1, w.encode(6, 8))
	for txid := ltx.TXID(6); txid <= 8; txid++ {
		w.remove(l0(txid))
	}
	w.snapshot() // at 10: must not be downloaded, the chain reaches 10
	gets := w.st.Stats().Gets
	mustStep(t, f)
	if got := f.Status().Bootstraps; got != 1 {
		t.Fatalf("bootstraps = %d, want 1 (the L1 file bridges the gap)", got)
	}
	if g := w.st.Stats().Gets - gets; g != 3 {
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
		w.remove(l0(txid))
	}
	err := step(t, f)
	if err == nil || !strings.Contains(err.Error(), "gap") || !strings.Contains(err.Error(), "TXID 0000000000000006") {
		t.Fatalf("step over a gap: %v; want a gap error naming TXID 6", err)
	}
	if r.Head().TXID != 5 {
		t.Fatalf("head moved to %d across a gap", r.Head().TXID)
	}
	w.checkHead(r, 5, "stuck at the gap")

	w.snapshot() // at 10
	mustStep(t, f)
	if got := f.Status().Bootstraps; got != 2 {
		t.Fatalf("bootstraps = %d, want 2", got)
	}
	if pinned.Counter >= r.Head().Counter {
		t.Fatalf("counter %d after re-bootstrap is not above the old %d", r.Head().Counter, pinned.Counter)
	}
	before, err := os.Stat(r.path)
	if err != nil {
		t.Fatal(err)
	}
	checkPinnedThenNew(t, w, r, f, pinned, 10)
	// The snapshot was folded into the same file, not renamed over it, so
	// other processes that hold it open see the new state too.
	after, err := os.Stat(r.path)
	if err != nil || !os.SameFile(before, after) {
		t.Fatalf("base file replaced (%v) instead of folded into", err)
	}
	if left, _ := filepath.Glob(filepath.Join(r.logDir, "*"+stagedExt)); len(left) > 0 {
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
			w.snapshot()
			r := w.openReplica()
			defer r.Close()
			f := w.manual(r)
			mustStep(t, f)
			for i := range 5 {
				w.insertRows(3, 1500+i*900) // 2..6, some pages only changed before the head
				w.commit()
			}
			mustStep(t, f)
			w.checkHead(r, 6, "before")
			w.ref.exec("UPDATE t SET v = ? WHERE id = 2", blob(77, 9000))
			w.advance(w.ref.image()) // 7
			w.ref.exec("DELETE FROM t WHERE id % 2 = 0")
			w.advance(w.ref.image()) // 8
			w.insertRows(2, 100)
			w.advance(w.ref.image()) // 9
			w.put(1, w.encode(4, 9))
			w.insertRows(1, 100)
			w.commit() // 10 at L0; 7..9 never at L0
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
	w.snapshot()
	r := w.openReplica()
	t.Cleanup(func() { r.Close() }) // after the follower's Close
	f := w.follow(r, w.st)
	if err := f.WaitReady(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	sawFold := false
	for i := 1; i <= n; i++ {
		switch {
		case i%100 == 0:
			w.ref.exec("DELETE FROM t WHERE id % 10 = ?", i/100%10)
		case i%10 == 0:
			w.ref.exec("UPDATE t SET v = ? WHERE id = (SELECT max(id) FROM t)", blob(i, 50+i%300))
		default:
			w.ref.exec("INSERT INTO t (k, v) VALUES (?, ?)", fmt.Sprint(i), blob(i, 20+i%200))
		}
		txid := w.commit()
		if i%250 == 0 {
			waitTXID(t, r, f, txid)
			w.checkHead(r, txid, fmt.Sprintf("commit %d", i))
			if st, _ := readState(w.path); st != nil && st.TXID > 1 && st.TXID < ltx.TXID(n) {
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
	snap := w.snapshot()
	r := w.openReplica()
	f := w.follow(r, w.st)
	for range 9 {
		w.insertRows(4, 700)
		w.commit()
	}
	waitTXID(t, r, f, 10)
	f.Close()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	w.remove(snap)
	for range 10 {
		w.insertRows(2, 900)
		w.commit() // 11..20
	}
	w.put(1, w.encode(11, 15))
	for txid := ltx.TXID(11); txid <= 15; txid++ {
		w.remove(l0(txid))
	}

	st := w.openStore()
	r, err := Open(w.path, w.source)
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
		w.insertRows(1, 100)
		w.commit()
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
	w.insertRows(3, 2000)
	w.commit() // 2
	mustStep(t, f)

	// Truncated L0 3, fixed by an L1 file 3..3.
	w.insertRows(3, 2000)
	txid := w.advance(w.ref.image())
	good := w.encode(txid, txid)
	w.writeRaw(l0(txid), good[:len(good)/2])
	for i := range 2 {
		err := step(t, f)
		if err == nil || !strings.Contains(err.Error(), l0(txid).Name()) {
			t.Fatalf("poll %d over a truncated file: %v; want an error naming %s", i, err, l0(txid).Name())
		}
		w.checkHead(r, 2, "truncated file")
	}
	if !logContains(w.logs, "rejected") || !logContains(w.logs, l0(txid).Name()) {
		t.Fatalf("rejection not logged:\n%s", w.logs)
	}
	w.put(1, good)
	mustStep(t, f)
	w.checkHead(r, 3, "good L1 file")

	// Flipped byte in L0 4, fixed by a snapshot at 5.
	w.insertRows(3, 2000)
	txid = w.advance(w.ref.image())
	w.writeRaw(l0(txid), flip(w.encode(txid, txid), 200))
	if err := step(t, f); err == nil || !strings.Contains(err.Error(), l0(txid).Name()) {
		t.Fatalf("poll over a corrupt file: %v", err)
	}
	w.checkHead(r, 3, "corrupt file")
	w.insertRows(3, 2000)
	w.advance(w.ref.image())
	w.snapshot()
	mustStep(t, f)
	w.checkHead(r, 5, "newer snapshot")
}

// TestBadSnapshot: the newest snapshot is corrupt; bootstrap rejects it and
// falls back to the older snapshot plus the L0 chain.
func TestBadSnapshot(t *testing.T) {
	w := newWorld(t, 1024, false)
	w.insertRows(20, 300)
	w.advance(w.ref.image())
	w.snapshot() // 2
	for range 3 {
		w.insertRows(5, 300)
		w.commit() // 3..5
	}
	newest := w.encode(1, 5)
	fi := store.FileInfo{Level: store.SnapshotLevel, MinTXID: 1, MaxTXID: 5}
	w.writeRaw(fi, flip(newest, len(newest)-30))
	r := w.openReplica()
	defer r.Close()
	f := w.manual(r)
	if err := step(t, f); err == nil || !strings.Contains(err.Error(), fi.Name()) {
		t.Fatalf("bootstrap from a corrupt snapshot: %v", err)
	}
	if r.Head() != nil {
		t.Fatal("a corrupt snapshot was installed")
	}
	if left, _ := filepath.Glob(filepath.Join(r.logDir, "*snapshot*")); len(left) > 0 {
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
		w.insertRows(3, 900)
		w.commit() // 2..5
	}
	mustStep(t, f)
	pinned, err := r.Pin()
	if err != nil {
		t.Fatal(err)
	}
	for txid := ltx.TXID(2); txid <= 5; txid++ {
		w.remove(l0(txid))
	}

	// A new primary with 1024-byte pages, TXIDs 6.. in the same store.
	w.ref = newRefDB(t, t.TempDir(), 1024)
	w.insertRows(30, 400)
	w.pub.PageSize = 1024
	w.advance(w.ref.image()) // 6
	w.insertRows(30, 400)
	w.advance(w.ref.image()) // 7
	w.snapshot()
	w.insertRows(1, 10)
	w.commit() // 8
	mustStep(t, f)
	if ps := r.Head().PageSize; ps != 1024 {
		t.Fatalf("page size %d after re-bootstrap, want 1024", ps)
	}
	w.checkHead(r, 8, "new page size")
	checkVersion(t, pinned, w.images[5], "pinned at the old page size")
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

	w.insertRows(3, 2000)
	txid := w.advance(w.ref.image())
	good := w.encode(txid, txid)
	w.writeRaw(l0(txid), flip(good, 200))
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(w.filePath(l0(txid)), old, old); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := step(t, f); err == nil {
			t.Fatal("poll over a corrupt file: no error")
		}
		w.checkHead(r, 1, "corrupt file")
	}
	downloads := w.st.Stats().Gets
	if err := step(t, f); err == nil {
		t.Fatal("poll over the same corrupt copy: no error")
	}
	if d := w.st.Stats().Gets - downloads; d != 0 {
		t.Errorf("the rejected copy was downloaded %d more times", d)
	}

	w.writeRaw(l0(txid), good) // same name, same size, written now
	mustStep(t, f)
	w.checkHead(r, txid, "the file written again")
}

// TestHeadDuringFirstInstall: Head and Pin may be called at any time, also
// while the follower installs the first snapshot (run with -race: the
// install publishes the root version under the replica's lock).
func TestHeadDuringFirstInstall(t *testing.T) {
	w := newWorld(t, 4096, true)
	w.insertRows(7, 500)
	w.advance(w.ref.image())
	w.snapshot()
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
	f := w.follow(r, w.st)
	if err := f.WaitReady(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	close(done)
	if n := <-watched; n == 0 {
		t.Fatal("the watcher never looked")
	}
	w.checkHead(r, w.pub.TXID, "after the first install")
}

// TestDirectBits: Direct tells a reader outside Go which pages of a
// version are not in the base file yet — exactly the pages of the unfolded
// versions of its chain — and clears them once a fold wrote them.
func TestDirectBits(t *testing.T) {
	w := newWorld(t, 4096, true)
	w.insertRows(7, 400)
	w.advance(w.ref.image())
	r, f := w.bootstrapped() // bootstrapped and folded: the file holds the head
	d, ok := r.Head().Direct(nil)
	if !ok || d.Bits != nil || d.Limit != r.Head().Size() {
		t.Fatalf("a folded head: %+v, %v; want the whole file, no bits", d, ok)
	}

	long, err := r.Pin() // holds the next versions out of the file
	if err != nil {
		t.Fatal(err)
	}
	w.ref.exec("UPDATE t SET v = 'x' WHERE id = 3")
	w.commit()
	mustStep(t, f)
	head := r.Head()
	d, ok = head.Direct(nil)
	if !ok || d.Bits == nil {
		t.Fatalf("an unfolded head: %+v, %v; want bits", d, ok)
	}
	bits := unsafe.Slice((*uint64)(d.Bits), d.Pages/64)
	set := func(pgno uint32) bool { return bits[pgno/64]>>(pgno%64)&1 == 1 }
	want := map[uint32]bool{}
	for pgno := range head.seg.pages {
		want[pgno] = true
	}
	for pgno := uint32(1); pgno <= head.Commit; pgno++ {
		if set(pgno) != want[pgno] {
			t.Errorf("page %d: bit %v, in the unfolded version %v", pgno, set(pgno), want[pgno])
		}
	}
	if len(want) == 0 {
		t.Fatal("the update changed no page")
	}

	long.Unpin()
	mustStep(t, f) // folds
	for pgno := range want {
		if set(pgno) {
			t.Errorf("page %d still set after the fold", pgno)
		}
	}
	if d, ok := r.Head().Direct(nil); !ok || d.Bits != nil {
		t.Errorf("the folded head: %+v, %v; want the whole file", d, ok)
	}
}
