package replica

import (
	"testing"
	"unsafe"
)

// TestDirectBits: Direct tells a reader outside Go which pages of a
// version are not in the base file yet — exactly the pages of the unfolded
// versions of its chain — and clears them once a fold wrote them.
func TestDirectBits(t *testing.T) {
	w := newWorld(t, 4096, true)
	w.InsertRows(7, 400)
	w.Advance(w.Ref.Image())
	r, f := w.bootstrapped() // bootstrapped and folded: the file holds the head
	d, ok := r.Head().Direct(nil)
	if !ok || d.Bits != nil || d.Limit != r.Head().Size() {
		t.Fatalf("a folded head: %+v, %v; want the whole file, no bits", d, ok)
	}

	long, err := r.Pin() // holds the next versions out of the file
	if err != nil {
		t.Fatal(err)
	}
	w.Ref.Exec("UPDATE t SET v = 'x' WHERE id = 3")
	w.Commit()
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
