package follow

// Litestream starts a new lineage (TXIDs from 1) when both its local state
// and the store are empty: a store wiped under running replicas.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/replica"
	"github.com/walrust/walrust/vfs/testkit/worldtest"
)

// newLineage wipes w's store and starts a new primary publishing into it the
// way Litestream does when both its local state and the store are empty:
// TXID 1 is the whole database at L0 and a snapshot, and later TXIDs are
// incremental L0 files, up to TXID last. Its TXIDs are below the old
// lineage's head.
func newLineage(t *testing.T, w *world, last ltx.TXID) *world {
	t.Helper()
	if err := os.RemoveAll(filepath.Join(w.StoreDir, "ltx")); err != nil {
		t.Fatal(err)
	}
	w2 := newWorld(t, 4096, true)
	w2.StoreDir = w.StoreDir
	w2.InsertRows(7, 333)
	w2.Put(0, w2.Encode(1, 1))
	w2.Snapshot()
	for w2.Pub.TXID < last {
		w2.InsertRows(2, 100)
		w2.Commit()
	}
	return w2
}

// oldLineage is a replica that has followed a Litestream-style store
// (NoChecksum files) to TXID 6, the last steps by polling L0.
func oldLineage(t *testing.T) (*world, *replica.Replica, *Follower) {
	w := newWorld(t, 4096, true)
	w.Put(0, w.Encode(1, 1))
	w.Snapshot()
	r := w.openReplica()
	t.Cleanup(func() { r.Close() })
	f := w.manual(r)
	mustStep(t, f) // bootstrap
	for range 5 {
		w.InsertRows(3, 900)
		w.Commit() // 2..6
	}
	mustStep(t, f) // poll
	mustStep(t, f) // idle poll
	w.checkHead(r, 6, "old lineage")
	return w, r, f
}

// TestNewLineageWhilePolling: the store is wiped and a new lineage starts
// from TXID 1 while the replica polls. The next poll sees that the file of
// its head is gone with nothing newer, and the replica re-bootstraps from
// the new lineage's snapshot instead of waiting for the new TXIDs to pass
// its own and applying them on top of the old content.
func TestNewLineageWhilePolling(t *testing.T) {
	w, r, f := oldLineage(t)
	if err := os.RemoveAll(filepath.Join(w.StoreDir, "ltx")); err != nil {
		t.Fatal(err)
	}
	// Wiped, nothing new yet: the replica keeps serving TXID 6 and says why.
	err := step(t, f)
	if err == nil {
		t.Fatal("a wiped store: no error")
	}
	t.Logf("wiped store: %v", err)
	w.checkHead(r, 6, "wiped store")

	w2 := newLineage(t, w, 4)
	mustStep(t, f)
	w2.checkHead(r, 4, "new lineage")
	// It keeps following the new lineage.
	w2.InsertRows(2, 100)
	w2.Commit() // 5
	mustStep(t, f)
	w2.checkHead(r, 5, "new lineage, next poll")
}

// TestNewLineageAtRestart: the replica was stopped while the store was
// wiped and started again; at start it lists every level, finds the store
// behind it, and re-bootstraps.
func TestNewLineageAtRestart(t *testing.T) {
	w, r, _ := oldLineage(t)
	w2 := newLineage(t, w, 3)
	f := w.manual(r) // a new follower: its first step lists every level
	mustStep(t, f)
	w2.checkHead(r, 3, "new lineage after a restart")
	if !logContains(w.Logs, "new lineage") {
		t.Errorf("no log line about the new lineage:\n%s", w.Logs)
	}
}

// TestHeadFileKept: a store that keeps the head's file (Litestream's L0
// retention never deletes the newest) costs one LIST per idle poll, and
// files deleted behind the head change nothing.
func TestHeadFileKept(t *testing.T) {
	w, r, f := oldLineage(t)
	for txid := ltx.TXID(1); txid < 6; txid++ {
		w.Remove(worldtest.L0(txid))
	}
	st := w.OpenStore()
	f.st = st
	before := st.Stats().Lists
	for range 3 {
		mustStep(t, f)
	}
	if d := st.Stats().Lists - before; d != 3 {
		t.Errorf("3 idle polls made %d LISTs", d)
	}
	w.checkHead(r, 6, "idle")
}

// TestNewLineageWipedLevelByLevel: a wipe is not atomic. The poll that
// finds the head's L0 file gone may list every level while L1 still holds
// the old head; the replica must keep treating the head as lost until the
// wipe is complete and the new lineage has a snapshot, and then
// re-bootstrap, not wait with the old content for the new TXIDs to pass.
func TestNewLineageWipedLevelByLevel(t *testing.T) {
	w, r, f := oldLineage(t)
	w.Put(1, w.Encode(1, 6)) // compacted into L1
	if err := os.RemoveAll(filepath.Join(w.StoreDir, "ltx", "0")); err != nil {
		t.Fatal(err)
	}
	// L0 gone, L1 not yet: the store still reaches TXID 6.
	mustStep(t, f)
	w.checkHead(r, 6, "half-wiped store")
	mustStep(t, f)
	w.checkHead(r, 6, "half-wiped store, next poll")

	w2 := newLineage(t, w, 4)
	mustStep(t, f)
	w2.checkHead(r, 4, "new lineage after a wipe level by level")
	if n := strings.Count(w.Logs.String(), "no longer has the replica's newest file"); n != 1 {
		t.Errorf("the lost head was logged %d times, want once:\n%s", n, w.Logs)
	}
}
