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

	"github.com/walrust/walrust/vfs/testkit/worldtest"
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
			if (pgno != 1 || !worldtest.HeaderExempt(i)) && buf[i] != want[i] {
				return fmt.Errorf("TXID %d page %d byte %d = %#x, want %#x", v.TXID, pgno, i, buf[i], want[i])
			}
		}
	}
	if n, err := v.ReadAt(buf[:1], int64(len(img))); n != 0 || !errors.Is(err, io.EOF) {
		return fmt.Errorf("TXID %d: read at the end: n=%d err=%v", v.TXID, n, err)
	}
	return nil
}

// followed is a replica of 40 rows of a 1 KiB-page database, bootstrapped
// and fed by a feeder every interval until stopFeeding; gate, if not nil,
// is attached to it first (attachGate).
func followed(t *testing.T, every time.Duration, gate **Gate) (w *world, r *Replica, stopFeeding func()) {
	t.Helper()
	w = newWorld(t, 1024, false)
	w.InsertRows(40, 300)
	w.Advance(w.Ref.Image())
	w.Snapshot()
	r = w.openReplica()
	t.Cleanup(func() { r.Close() }) // after the follower's Close
	if gate != nil {
		*gate = attachGate(t, r)
	}
	stopFeeding = w.feedEvery(r, every)
	waitTXID(t, r, w.Pub.TXID)
	return w, r, stopFeeding
}

// TestConcurrentReaders runs readers that pin, read every page, hold the
// pin for a moment, read again and unpin, while a feeder applies
// and folds 150 commits (a VACUUM among them). Every read must equal the
// reference image of the pinned TXID, and each reader's TXIDs and change
// counters only move forward. Run with -race.
func TestConcurrentReaders(t *testing.T) {
	w, r, stopFeeding := followed(t, 5*time.Millisecond, nil)

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
				img := w.Image(v.TXID)
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
			w.Ref.Exec("DELETE FROM t WHERE id % 4 != 0")
			w.Commit()
			w.Ref.Exec("VACUUM")
		case i%5 == 0:
			w.Ref.Exec("UPDATE t SET v = ? WHERE id % 9 = ?", worldtest.Blob(i, 200+i), i%9)
		case i%7 == 0:
			w.Ref.Exec("DELETE FROM t WHERE id IN (SELECT id FROM t ORDER BY random() LIMIT 3)")
		default:
			w.InsertRows(1+i%4, 100+i*17%1500)
		}
		w.Commit()
		if i%10 == 0 {
			time.Sleep(time.Millisecond) // let the follower interleave with readers
		}
	}
	last := w.Pub.TXID
	waitTXID(t, r, last)
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
	stopFeeding()
	if _, err := r.Fold(); err != nil {
		t.Fatal(err)
	}
	w.checkHead(r, last, "end")
	w.checkBase(last, "end")
}
