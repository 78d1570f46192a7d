package replica

import (
	"errors"
	"testing"
)

type fakeRevoker struct{ revoked *int }

func (f fakeRevoker) Revoke() { *f.revoked++ }

// TestExpireHeld: a reader that never ends keeps the fold back; once the
// log holds more than the limit for it, its version expires (its reads
// fail, its direct reader is revoked) and the fold goes past it. A reader
// that began later, within the limit, keeps reading its TXID.
func TestExpireHeld(t *testing.T) {
	w := newWorld(t, 1024, false)
	r, f := w.bootstrapped()
	f.maxHeld = 48 << 10
	oldest, err := r.Pin()
	if err != nil {
		t.Fatal(err)
	}
	defer oldest.Unpin()
	revoked := 0
	rv := fakeRevoker{&revoked}
	if _, ok := oldest.Direct(rv); !ok {
		t.Fatal("no direct reads for the root")
	}
	oldTXID := oldest.TXID
	for i := 0; r.root.TXID == oldTXID; i++ {
		if i == 40 {
			t.Fatalf("the fold never passed the old reader: %d bytes held", r.HeldBytes())
		}
		w.InsertRows(4, 1000)
		w.Commit()
		mustStep(t, f)
		if r.root.TXID == oldTXID && r.HeldBytes() > f.maxHeld {
			t.Fatalf("%d bytes held, past the limit of %d", r.HeldBytes(), f.maxHeld)
		}
	}
	if revoked != 1 {
		t.Fatalf("the direct reader was revoked %d times", revoked)
	}
	buf := make([]byte, 1024)
	if _, err := oldest.ReadAt(buf, 0); !errors.Is(err, ErrExpired) {
		t.Fatalf("read of an expired version: %v", err)
	}
	if _, ok := oldest.Direct(nil); ok {
		t.Fatal("direct reads of an expired version")
	}
	if f.expired != 1 {
		t.Fatalf("ExpireHeld expired %d versions, want 1", f.expired)
	}
	// A reader of the newest TXID is within the limit and stays.
	later, err := r.Pin()
	if err != nil {
		t.Fatal(err)
	}
	defer later.Unpin()
	w.InsertRows(1, 100)
	w.Commit()
	mustStep(t, f)
	checkVersion(t, later, w.Image(later.TXID), "a later reader within the limit")
	w.checkHead(r, w.Pub.TXID, "head")
}
