package replica

import (
	"sync/atomic"
	"testing"
)

// TestGateAcrossRebootstrap: a reader that began at the gate keeps reading
// exactly its version after a re-bootstrap (a staged snapshot that replaces
// the chain it read): the fold of the snapshot rewrites the whole base
// file, so it must wait for the gated reader of the abandoned chain; past
// max_held that reader is revoked, not served the snapshot's pages.
func TestGateAcrossRebootstrap(t *testing.T) {
	w := newWorld(t, 1024, false)
	w.InsertRows(30, 300)
	w.AdvanceRef()
	r, f := w.bootstrapped()
	g := attachGate(t, r)
	openGate(t, r)
	slot := g.Pin()
	if slot < 0 {
		t.Fatal("the gate stays closed on a folded head")
	}
	image := func(v *Version) []byte { return w.Image(v.TXID) }
	if err := readGated(g, slot, image, 0); err != nil {
		t.Fatal(err)
	}
	// The primary moves on, and the replica re-bootstraps from a snapshot
	// of a later TXID instead of applying the files between.
	w.Ref.Exec("UPDATE t SET v = zeroblob(300)")
	w.InsertRows(20, 200)
	w.AdvanceRef()
	staged, err := stageFile(r, w.Encode(1, w.Pub.TXID))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Install(staged); err != nil {
		t.Fatal(err)
	}
	if g.Pin() >= 0 {
		t.Fatal("the gate is open on the abandoned chain")
	}
	if folded, err := r.Fold(); err != nil || folded {
		t.Fatalf("a fold of the snapshot under a gated reader of the old chain: folded %v, %v", folded, err)
	}
	if err := readGated(g, slot, image, 0); err != nil {
		t.Fatalf("after the re-bootstrap: %v", err)
	}
	// Past max_held, the gated reader of the old chain expires: revoked
	// before the fold rewrites the file.
	if _, err := r.ExpireHeld(0); err != nil {
		t.Fatal(err)
	}
	if atomic.LoadInt32(&g.mem.Slots[slot].Revoked) != 1 {
		t.Fatal("the gated reader of the abandoned chain was not revoked before the fold")
	}
	g.Unpin(slot)
	mustStep(t, f)
	w.checkHead(r, w.Pub.TXID, "after the re-bootstrap")
	openGate(t, r)
	if s := g.Pin(); s < 0 || g.v[s].Load() != r.Head() {
		t.Fatal("the gate did not open on the snapshot's version once folded")
	} else {
		if err := readGated(g, s, image, 0); err != nil {
			t.Fatal(err)
		}
		g.Unpin(s)
	}
}
