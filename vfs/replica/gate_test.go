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
	"unsafe"

	"github.com/walrust/walrust/vfs/testkit/worldtest"
)

// gateRead is what the C layer does in a gated transaction, in Go: pin the
// gate, read every page of its version as the opening says (page 1 from
// the gate's buffer or the file; a page whose bit is set, or past the
// limit, through Go; the others from the base file with pread), then
// (after a pause, during which newer versions may be published) read them
// again, and unpin. It reports the first byte that is not the version's.
// false: the gate was closed.
func gateRead(g *Gate, img func(*Version) []byte, pause time.Duration) (bool, error) {
	slot := g.Pin()
	if slot < 0 {
		return false, nil
	}
	defer g.Unpin(slot)
	return true, readGated(g, slot, img, pause)
}

// readGated is gateRead's reads, by a reader that holds a gate pin.
func readGated(g *Gate, slot int, img func(*Version) []byte, pause time.Duration) error {
	m := &g.mem.Slots[slot]
	v := g.v[slot].Load()
	ps := int(m.PageSize)
	want := img(v)
	if m.Size != int64(len(want)) || m.Size != v.Size() || ps != int(v.PageSize) {
		return fmt.Errorf("TXID %d: the gate says %d bytes of %d-byte pages; the version has %d, the reference %d", v.TXID, m.Size, ps, v.Size(), len(want))
	}
	var bits []uint64
	if m.Bits != nil {
		bits = unsafe.Slice((*uint64)(m.Bits), m.Pages/64)
	}
	buf := make([]byte, m.Size)
	for pass := range 2 {
		if pass == 1 {
			time.Sleep(pause)
		}
		for pgno := uint32(1); int(pgno)*ps <= len(buf); pgno++ {
			page := buf[int(pgno-1)*ps : int(pgno)*ps]
			off := int64(pgno-1) * int64(ps)
			var err error
			switch {
			case pgno == 1 && m.Page1 == 2:
				copy(page, g.mem.Page1[slot][:ps])
			case (pgno == 1 && m.Page1 != 1) || off+int64(ps) > m.Limit ||
				(pgno < m.Pages && atomic.LoadUint64(&bits[pgno/64])>>(pgno%64)&1 == 1):
				_, err = v.ReadAt(page, off) // through Go
			default:
				_, err = syscall.Pread(int(m.FD), page, off)
			}
			if err != nil {
				return fmt.Errorf("TXID %d page %d: %w", v.TXID, pgno, err)
			}
		}
		for i := range 100 {
			if !worldtest.HeaderExempt(i) && buf[i] != want[i] {
				return fmt.Errorf("TXID %d, pass %d: byte %d of page 1 is %#x, want %#x", v.TXID, pass, i, buf[i], want[i])
			}
		}
		if !bytes.Equal(buf[100:], want[100:]) {
			return fmt.Errorf("TXID %d, pass %d: the pages read are not the version's", v.TXID, pass)
		}
	}
	return nil
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
	var g *Gate
	w, r, stopFeeding := followed(t, 3*time.Millisecond, &g)

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
					if pause > 0 && !g.isOpen() {
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

// openGate pins the head in Go and lets go, as the first transaction
// after a change does, which opens the gate when it can.
func openGate(t *testing.T, r *Replica) {
	t.Helper()
	v, err := r.Pin()
	if err != nil {
		t.Fatal(err)
	}
	v.Unpin()
}

// TestGateHoldsFold: a pin taken at the gate keeps the fold from writing
// the base file, as a pin in Go does, and the gate closes at a publish: no
// transaction begins there on a version that is not the newest. Once the
// reader unpins, the fold runs and a Pin opens the gate on the new head.
func TestGateHoldsFold(t *testing.T) {
	w := newWorld(t, 1024, false)
	r, f := w.bootstrapped()
	g := attachGate(t, r)
	if g.Pin() >= 0 {
		t.Fatal("a gate attached is open before any Pin")
	}
	openGate(t, r)
	slot := g.Pin()
	if slot < 0 {
		t.Fatal("the gate stays closed on a folded head")
	}
	old := g.v[slot].Load()
	w.InsertRows(5, 500)
	w.Commit()
	if err := f.catchUp(t.Context()); err != nil {
		t.Fatal(err)
	}
	if g.Pin() >= 0 {
		t.Fatal("the gate is open on a version that is no longer the newest")
	}
	if folded, err := r.Fold(); err != nil || folded {
		t.Fatalf("fold under a gated reader: folded %v, %v", folded, err)
	}
	w.checkBase(old.TXID, "under the gated reader")
	g.Unpin(slot)
	if folded, err := r.Fold(); err != nil || !folded {
		t.Fatalf("fold once the gated reader left: folded %v, %v", folded, err)
	}
	openGate(t, r)
	if slot = g.Pin(); slot < 0 || g.v[slot].Load() != r.Head() {
		t.Fatal("the gate did not open on the new head")
	}
	g.Unpin(slot)
}

// TestGateExpires: a gated reader that holds the fold back past max_held
// expires like any other: its slot's direct reads are revoked, the fold
// goes past it, and the version Go adopts for it fails its reads. The
// gate opens on the new head in another slot meanwhile; once every slot
// has a reader, it stays closed.
func TestGateExpires(t *testing.T) {
	w := newWorld(t, 1024, false)
	r, f := w.bootstrapped()
	f.maxHeld = 48 << 10
	g := attachGate(t, r)
	openGate(t, r)
	slot := g.Pin()
	if slot < 0 {
		t.Fatal("the gate stays closed on a folded head")
	}
	oldTXID := r.Head().TXID
	for i := 0; r.root.TXID == oldTXID; i++ {
		if i == 40 {
			t.Fatalf("the fold never passed the gated reader: %d bytes held", r.HeldBytes())
		}
		w.InsertRows(4, 1000)
		w.Commit()
		mustStep(t, f)
	}
	if atomic.LoadInt32(&g.mem.Slots[slot].Revoked) != 1 {
		t.Fatal("the gated reader was not revoked")
	}
	adopted := g.Adopt(slot)
	if _, err := adopted.ReadAt(make([]byte, 1024), 0); !errors.Is(err, ErrExpired) {
		t.Fatalf("a read of the adopted expired version: %v", err)
	}
	adopted.Unpin()
	// Readers that never leave, one per slot: the gate opens on the head
	// in each free slot, unrevoked, and then no more.
	held := []int{slot}
	for len(held) < gateSlots {
		openGate(t, r)
		s := g.Pin()
		if s < 0 || g.v[s].Load() != r.Head() || atomic.LoadInt32(&g.mem.Slots[s].Revoked) != 0 {
			t.Fatalf("with %d slots held, the gate did not open, unrevoked, on the head (slot %d)", len(held), s)
		}
		held = append(held, s)
		w.InsertRows(1, 100)
		w.Commit()
		mustStep(t, f)
	}
	openGate(t, r)
	if g.Pin() >= 0 {
		t.Fatal("the gate opened with every slot held")
	}
	for _, s := range held {
		g.Unpin(s)
	}
	mustStep(t, f)
	openGate(t, r)
	if s := g.Pin(); s < 0 {
		t.Fatal("the gate did not open once its readers left")
	} else {
		g.Unpin(s)
	}
	w.checkHead(r, w.Pub.TXID, "end")
}

// TestGateUnfoldedHead: while a reader holds the fold back, the gate opens
// on the newest version all the same, with the pages of the versions not
// folded yet read through Go and page 1 from the slot's buffer. A gated
// reader keeps reading exactly its version while newer ones are applied
// and merged behind the long reader.
func TestGateUnfoldedHead(t *testing.T) {
	w := newWorld(t, 1024, false)
	r, f := w.bootstrapped()
	g := attachGate(t, r)
	openGate(t, r)
	long := g.Pin() // a long gated transaction: holds every newer version unfolded
	if long < 0 {
		t.Fatal("the gate stays closed on a folded head")
	}
	longV := g.v[long].Load()
	for i := range 3 {
		w.InsertRows(2, 300+i)
		w.Commit()
		mustStep(t, f)
	}
	openGate(t, r)
	slot := g.Pin()
	if slot < 0 || slot == long {
		t.Fatalf("the gate did not open on an unfolded head in a free slot (slot %d, the long reader's %d)", slot, long)
	}
	defer g.Unpin(slot)
	if m := &g.mem.Slots[slot]; m.Page1 != 2 || m.Bits == nil {
		t.Fatalf("an unfolded head's opening: page1 %d, bits %p; want the buffer and bits", m.Page1, m.Bits)
	}
	image := func(v *Version) []byte { return w.Image(v.TXID) }
	if err := readGated(g, slot, image, 0); err != nil {
		t.Fatal(err)
	}
	for range 2 * mergeFanIn {
		w.InsertRows(1, 200)
		w.Commit()
		mustStep(t, f)
	}
	if err := readGated(g, slot, image, 0); err != nil {
		t.Fatalf("after %d more versions: %v", 2*mergeFanIn, err)
	}
	if err := readGated(g, long, image, 0); err != nil {
		t.Fatalf("the long reader: %v", err)
	}
	if longV.TXID == r.Head().TXID {
		t.Fatal("no newer version was applied")
	}
	g.Unpin(long)
}
