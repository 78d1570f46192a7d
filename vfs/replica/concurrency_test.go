package replica

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/superfly/ltx"
)

// versionDiff is checkVersion for goroutines other than the test's: it
// reports the first difference between a version and an image instead of
// failing the test.
func versionDiff(v *Version, img []byte) error {
	if img == nil {
		return fmt.Errorf("TXID %d has no reference image", v.TXID)
	}
	ps := int(v.PageSize)
	if v.Size() != int64(len(img)) {
		return fmt.Errorf("TXID %d serves %d bytes, reference has %d", v.TXID, v.Size(), len(img))
	}
	buf := make([]byte, ps)
	for pgno := 1; pgno*ps <= len(img); pgno++ {
		if n, err := v.ReadAt(buf, int64(pgno-1)*int64(ps)); err != nil || n != ps {
			return fmt.Errorf("TXID %d page %d: n=%d err=%v", v.TXID, pgno, n, err)
		}
		want := img[(pgno-1)*ps : pgno*ps]
		for i := range want {
			if (pgno != 1 || !headerExempt(i)) && buf[i] != want[i] {
				return fmt.Errorf("TXID %d page %d byte %d = %#x, want %#x", v.TXID, pgno, i, buf[i], want[i])
			}
		}
	}
	if n, err := v.ReadAt(buf[:1], int64(len(img))); n != 0 || !errors.Is(err, io.EOF) {
		return fmt.Errorf("TXID %d: read at the end: n=%d err=%v", v.TXID, n, err)
	}
	return nil
}

// TestConcurrentReaders runs readers that pin, read every page, hold the
// pin for a moment, read again and unpin, while a real Follower applies
// and folds 150 commits (a VACUUM among them). Every read must equal the
// reference image of the pinned TXID, and each reader's TXIDs and change
// counters only move forward. Run with -race.
func TestConcurrentReaders(t *testing.T) {
	w := newWorld(t, 1024, false)
	w.insertRows(40, 300)
	w.advance(w.ref.image())
	w.snapshot()
	r := w.openReplica()
	t.Cleanup(func() { r.Close() }) // after the follower's Close
	f := w.follow(r, w.st)
	if err := f.WaitReady(5 * time.Second); err != nil {
		t.Fatal(err)
	}

	var stop atomic.Bool
	var reads atomic.Int64
	var held atomic.Int64 // reads whose pin outlived a newer head
	errc := make(chan error, 4)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			var lastTXID ltx.TXID
			var lastCounter uint32
			for !stop.Load() {
				v, err := r.Pin()
				if err != nil {
					errc <- err
					return
				}
				if v.TXID < lastTXID || v.Counter < lastCounter {
					errc <- fmt.Errorf("reader %d went back from TXID %d (counter %d) to %d (%d)", g, lastTXID, lastCounter, v.TXID, v.Counter)
					v.Unpin()
					return
				}
				lastTXID, lastCounter = v.TXID, v.Counter
				img := w.image(v.TXID)
				err = versionDiff(v, img)
				if err == nil && rng.IntN(3) == 0 {
					time.Sleep(time.Duration(rng.IntN(4000)) * time.Microsecond)
					if r.Head() != v {
						held.Add(1)
					}
					err = versionDiff(v, img)
				}
				v.Unpin()
				if err != nil {
					errc <- fmt.Errorf("reader %d: %w", g, err)
					return
				}
				reads.Add(1)
			}
		}()
	}

	for i := range 150 {
		switch {
		case i == 75:
			w.ref.exec("DELETE FROM t WHERE id % 4 != 0")
			w.commit()
			w.ref.exec("VACUUM")
		case i%5 == 0:
			w.ref.exec("UPDATE t SET v = ? WHERE id % 9 = ?", blob(i, 200+i), i%9)
		case i%7 == 0:
			w.ref.exec("DELETE FROM t WHERE id IN (SELECT id FROM t ORDER BY random() LIMIT 3)")
		default:
			w.insertRows(1+i%4, 100+i*17%1500)
		}
		w.commit()
		if i%10 == 0 {
			time.Sleep(time.Millisecond) // let the follower interleave with readers
		}
	}
	last := w.pub.TXID
	waitTXID(t, r, f, last)
	stop.Store(true)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	if reads.Load() < 100 || held.Load() == 0 {
		t.Fatalf("%d reads, %d held across a newer head: the test exercised too little", reads.Load(), held.Load())
	}
	f.Close()
	if _, err := r.Fold(); err != nil {
		t.Fatal(err)
	}
	w.checkHead(r, last, "end")
	w.checkBase(last, "end")
}

// TestRestartAfterL0Retention: the replica was stopped for longer than L0
// retention. Every file after its TXID is in L1 and L2, L0 is empty and the
// snapshot is gone; the reopened follower must look past L0 on its first
// poll and follow the compactions, and then L0 again.
func TestRestartAfterL0Retention(t *testing.T) {
	w := newWorld(t, 4096, true)
	snap := w.snapshot()
	r := w.openReplica()
	f := w.manual(r)
	mustStep(t, f)
	for range 5 {
		w.insertRows(2, 1000)
		w.commit() // 2..6
	}
	mustStep(t, f)
	mustStep(t, f)
	w.checkBase(6, "before the stop")
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	for range 10 {
		w.insertRows(2, 1000)
		w.commit() // 7..16
	}
	w.put(1, w.encode(7, 11))
	w.put(2, w.encode(12, 16))
	for txid := ltx.TXID(7); txid <= 16; txid++ {
		w.remove(l0(txid))
	}
	w.remove(snap)

	st := w.openStore()
	r = w.openReplica()
	t.Cleanup(func() { r.Close() }) // after the follower's Close
	f = w.follow(r, st)
	waitTXID(t, r, f, 16)
	w.checkHead(r, 16, "after restart")
	if g := st.Stats().Gets; g != 2 {
		t.Fatalf("%d GETs, want 2 (L1 7-11, L2 12-16)", g)
	}
	w.insertRows(1, 10)
	w.commit() // 17 at L0
	waitTXID(t, r, f, 17)
	w.checkHead(r, 17, "L0 again")
	if s := f.Status(); s.Bootstraps != 0 {
		t.Fatalf("bootstraps %d after restart, want 0", s.Bootstraps)
	}
}
