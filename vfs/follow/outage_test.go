package follow

import (
	"os"
	"testing"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/testkit/worldtest"
)

// TestOutageLongerThanL0Retention: the store cannot be reached for a while;
// meanwhile the primary commits, compacts into L1, L0 retention deletes the
// L0 files, and the primary goes idle. When the store answers again, the
// replica must find its way through L1 — not settle, with no error, on the
// TXID it had before the outage because L0 holds nothing after it.
func TestOutageLongerThanL0Retention(t *testing.T) {
	w := newWorld(t, 4096, true)
	r, f := w.bootstrapped()
	for range 2 {
		w.InsertRows(2, 500)
		w.Commit() // 2, 3
	}
	mustStep(t, f)
	w.checkHead(r, 3, "before the outage")

	away := w.StoreDir + ".away"
	if err := os.Rename(w.StoreDir, away); err != nil {
		t.Fatal(err)
	}
	if err := step(t, f); err == nil {
		t.Fatal("poll of an unreachable store succeeded")
	}
	real := w.StoreDir
	w.StoreDir = away // the primary still reaches it
	for range 5 {
		w.InsertRows(2, 500)
		w.Commit() // 4..8
	}
	w.Put(1, w.Encode(4, 8))
	for txid := ltx.TXID(4); txid <= 8; txid++ {
		w.Remove(worldtest.L0(txid))
	}
	if err := step(t, f); err == nil {
		t.Fatal("poll of an unreachable store succeeded")
	}
	w.StoreDir = real
	if err := os.Rename(away, w.StoreDir); err != nil {
		t.Fatal(err)
	}
	mustStep(t, f)
	w.checkHead(r, 8, "after the outage")
	mustStep(t, f)
	w.checkBase(8, "after the outage")
}
