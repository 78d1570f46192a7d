package replica

import (
	"os"
	"testing"

	"github.com/superfly/ltx"
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
		w.insertRows(2, 500)
		w.commit() // 2, 3
	}
	mustStep(t, f)
	w.checkHead(r, 3, "before the outage")

	away := w.storeDir + ".away"
	if err := os.Rename(w.storeDir, away); err != nil {
		t.Fatal(err)
	}
	if err := step(t, f); err == nil {
		t.Fatal("poll of an unreachable store succeeded")
	}
	real := w.storeDir
	w.storeDir = away // the primary still reaches it
	for range 5 {
		w.insertRows(2, 500)
		w.commit() // 4..8
	}
	w.put(1, w.encode(4, 8))
	for txid := ltx.TXID(4); txid <= 8; txid++ {
		w.remove(l0(txid))
	}
	if err := step(t, f); err == nil {
		t.Fatal("poll of an unreachable store succeeded")
	}
	w.storeDir = real
	if err := os.Rename(away, w.storeDir); err != nil {
		t.Fatal(err)
	}
	mustStep(t, f)
	w.checkHead(r, 8, "after the outage")
	mustStep(t, f)
	w.checkBase(8, "after the outage")
}
