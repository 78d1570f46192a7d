package follow

import (
	"testing"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/testkit/worldtest"
)

// TestRestartAfterL0Retention: the replica was stopped for longer than L0
// retention. Every file after its TXID is in L1 and L2, L0 is empty and the
// snapshot is gone; the reopened follower must look past L0 on its first
// poll and follow the compactions, and then L0 again.
func TestRestartAfterL0Retention(t *testing.T) {
	w := newWorld(t, 4096, true)
	snap := w.Snapshot()
	r := w.openReplica()
	f := w.manual(r)
	mustStep(t, f)
	for range 5 {
		w.InsertRows(2, 1000)
		w.Commit() // 2..6
	}
	mustStep(t, f)
	mustStep(t, f)
	w.checkBase(6, "before the stop")
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	for range 10 {
		w.InsertRows(2, 1000)
		w.Commit() // 7..16
	}
	w.Put(1, w.Encode(7, 11))
	w.Put(2, w.Encode(12, 16))
	for txid := ltx.TXID(7); txid <= 16; txid++ {
		w.Remove(worldtest.L0(txid))
	}
	w.Remove(snap)

	st := w.OpenStore()
	r = w.openReplica()
	t.Cleanup(func() { r.Close() }) // after the follower's Close
	f = w.follow(r, st)
	waitTXID(t, r, f, 16)
	w.checkHead(r, 16, "after restart")
	if g := st.Stats().Gets; g != 2 {
		t.Fatalf("%d GETs, want 2 (L1 7-11, L2 12-16)", g)
	}
	w.InsertRows(1, 10)
	w.Commit() // 17 at L0
	waitTXID(t, r, f, 17)
	w.checkHead(r, 17, "L0 again")
	if s := f.Status(); s.Bootstraps != 0 {
		t.Fatalf("bootstraps %d after restart, want 0", s.Bootstraps)
	}
}
