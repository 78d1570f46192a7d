package replica

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/walrust/walrust/vfs/testkit/worldtest"
)

// gateRead is what the C layer does in a gated transaction, in Go: pin the
// gate, read every page of its version from the base file with pread, then
// (after a pause, during which newer versions may be published) read them
// again, and unpin. It reports the first byte that is not the version's.
// false: the gate was closed.
func gateRead(g *Gate, img func(*Version) []byte, pause time.Duration) (bool, error) {
	if !g.Pin() {
		return false, nil
	}
	defer g.Unpin()
	m := g.mem
	v := g.v.Load()
	fd, size, ps := int(atomic.LoadInt32(&m.FD)), atomic.LoadInt64(&m.Size), int(atomic.LoadInt32(&m.PageSize))
	want := img(v)
	if size != int64(len(want)) || size != v.Size() || ps != int(v.PageSize) {
		return true, fmt.Errorf("TXID %d: the gate says %d bytes of %d-byte pages; the version has %d, the reference %d", v.TXID, size, ps, v.Size(), len(want))
	}
	buf := make([]byte, size)
	for pass := range 2 {
		if pass == 1 {
			time.Sleep(pause)
		}
		if n, err := syscall.Pread(fd, buf, 0); err != nil || int64(n) != size {
			return true, fmt.Errorf("TXID %d: pread %d bytes: %d, %v", v.TXID, size, n, err)
		}
		for i := range 100 {
			if !worldtest.HeaderExempt(i) && buf[i] != want[i] {
				return true, fmt.Errorf("TXID %d, pass %d: byte %d of the base file is %#x, want %#x", v.TXID, pass, i, buf[i], want[i])
			}
		}
		if !bytes.Equal(buf[100:], want[100:]) {
			return true, fmt.Errorf("TXID %d, pass %d: the base file past the header is not the version's", v.TXID, pass)
		}
	}
	return true, nil
}

// attachGate attaches a new gate to r, detached and freed at cleanup.
func attachGate(t *testing.T, r *Replica) *Gate {
	g, err := NewGate()
	if err != nil {
		t.Fatal(err)
	}
	r.AttachGate(g)
	t.Cleanup(func() {
		r.mu.Lock()
		r.gate = nil
		r.mu.Unlock()
		g.Free()
	})
	return g
}

// TestGateConcurrentReaders: readers begin their transactions at the gate
// whenever it is open (as the C layer does) and read the base file
// directly, while a feeder applies and folds 100 commits; every byte they
// read is their version's, however long they hold it. A reader that
// finds the gate closed pins in Go, which opens it again once the newest
// version is folded. Run with -race.
func TestGateConcurrentReaders(t *testing.T) {
	w := newWorld(t, 1024, false)
	w.InsertRows(40, 300)
	w.Advance(w.Ref.Image())
	w.Snapshot()
	r := w.openReplica()
	t.Cleanup(func() { r.Close() })
	g := attachGate(t, r)
	stopFeeding := w.feedEvery(r, 3*time.Millisecond)
	waitTXID(t, r, w.Pub.TXID)

	var stop atomic.Bool
	var gated, inGo, held atomic.Int64
	errc := make(chan error, 4)
	var wg sync.WaitGroup
	image := func(v *Version) []byte { return w.Image(v.TXID) }
	for i := range 4 {
		wg.Go(func() {
			for n := 0; !stop.Load(); n++ {
				pause := time.Duration(n%4) * time.Millisecond
				ok, err := gateRead(g, image, pause)
				if err != nil {
					errc <- fmt.Errorf("reader %d: %w", i, err)
					return
				}
				if ok {
					gated.Add(1)
					if pause > 0 && atomic.LoadUint64(&g.mem.Word)&gateOpen == 0 {
						held.Add(1) // the gate closed while it read: a newer version came
					}
					continue
				}
				v, err := r.Pin() // as Go's xLock does; opens the gate when it can
				if err != nil {
					errc <- err
					return
				}
				err = versionDiff(v, w.Image(v.TXID))
				v.Unpin()
				if err != nil {
					errc <- fmt.Errorf("reader %d in Go: %w", i, err)
					return
				}
				inGo.Add(1)
			}
		})
	}
	for i := range 100 {
		if i%6 == 0 {
			w.Ref.Exec("UPDATE t SET v = ? WHERE id % 7 = ?", worldtest.Blob(i, 300), i%7)
		} else {
			w.InsertRows(1+i%3, 200+i*13%900)
		}
		w.Commit()
		if i%10 == 0 {
			time.Sleep(60 * time.Millisecond) // a pause: the head is folded, the gate opens
		} else {
			time.Sleep(time.Duration(i%3) * time.Millisecond)
		}
	}
	waitTXID(t, r, w.Pub.TXID)
	time.Sleep(20 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	t.Logf("%d gated transactions (%d held across a newer version), %d in Go", gated.Load(), held.Load(), inGo.Load())
	if gated.Load() < 20 || inGo.Load() == 0 || held.Load() == 0 {
		t.Fatalf("%d gated transactions (%d held across a newer version), %d in Go: the test exercised too little", gated.Load(), held.Load(), inGo.Load())
	}
	stopFeeding()
	w.checkHead(r, w.Pub.TXID, "end")
}

// TestGateHoldsFold: a pin taken at the gate keeps the fold from writing
// the base file, as a pin in Go does, and the gate closes at a publish: no
// transaction begins there on a version that is not the newest. Once the
// reader unpins, the fold runs and a Pin opens the gate on the new head.
func TestGateHoldsFold(t *testing.T) {
	w := newWorld(t, 1024, false)
	r, f := w.bootstrapped()
	g := attachGate(t, r)
	if g.Pin() {
		t.Fatal("a gate attached is open before any Pin")
	}
	v, err := r.Pin()
	if err != nil {
		t.Fatal(err)
	}
	v.Unpin()
	if !g.Pin() {
		t.Fatal("the gate stays closed on a folded head")
	}
	old := g.v.Load()
	w.InsertRows(5, 500)
	w.Commit()
	if err := f.catchUp(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r2 := g.Pin(); r2 {
		t.Fatal("the gate is open on a version that is no longer the newest")
	}
	if folded, err := r.Fold(); err != nil || folded {
		t.Fatalf("fold under a gated reader: folded %v, %v", folded, err)
	}
	w.checkBase(old.TXID, "under the gated reader")
	g.Unpin()
	if folded, err := r.Fold(); err != nil || !folded {
		t.Fatalf("fold once the gated reader left: folded %v, %v", folded, err)
	}
	if v, err = r.Pin(); err != nil {
		t.Fatal(err)
	}
	v.Unpin()
	if !g.Pin() || g.v.Load() != r.Head() {
		t.Fatal("the gate did not open on the new head")
	}
	g.Unpin()
}

// TestGateExpires: a gated reader that holds the fold back past max_held
// expires like any other: the gate's direct reads are revoked, the fold
// goes past it, and the version Go adopts for it fails its reads. The
// gate opens again only once the reader has left.
func TestGateExpires(t *testing.T) {
	w := newWorld(t, 1024, false)
	r, f := w.bootstrapped()
	f.maxHeld = 48 << 10
	g := attachGate(t, r)
	v, err := r.Pin()
	if err != nil {
		t.Fatal(err)
	}
	v.Unpin()
	if !g.Pin() {
		t.Fatal("the gate stays closed on a folded head")
	}
	oldTXID := r.Head().TXID
	for i := 0; r.Head() == nil || r.root.TXID == oldTXID; i++ {
		if i == 40 {
			t.Fatalf("the fold never passed the gated reader: %d bytes held", r.HeldBytes())
		}
		w.InsertRows(4, 1000)
		w.Commit()
		mustStep(t, f)
	}
	if atomic.LoadInt32(&g.mem.Revoked) != 1 {
		t.Fatal("the gated reader was not revoked")
	}
	adopted := g.Adopt()
	if _, err := adopted.ReadAt(make([]byte, 1024), 0); !errors.Is(err, ErrExpired) {
		t.Fatalf("a read of the adopted expired version: %v", err)
	}
	adopted.Unpin()
	if v, err = r.Pin(); err != nil {
		t.Fatal(err)
	}
	v.Unpin()
	if g.Pin() {
		t.Fatal("the gate opened while a reader of its last opening is still in")
	}
	g.Unpin() // the expired reader leaves
	if v, err = r.Pin(); err != nil {
		t.Fatal(err)
	}
	v.Unpin()
	if !g.Pin() || g.v.Load() != r.Head() || atomic.LoadInt32(&g.mem.Revoked) != 0 {
		t.Fatal("the gate did not open again, unrevoked, on the head")
	}
	g.Unpin()
	w.checkHead(r, w.Pub.TXID, "end")
}
