package follow

import (
	"fmt"
	"testing"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/testkit/worldtest"
)

// TestNewLineageOverlappingTXIDs: the store restarts from a new snapshot
// whose TXIDs overlap the replica's (with checksums, or another page size,
// the first new file does not follow). The replica re-bootstraps to the new
// lineage instead of staying stuck behind that file.
func TestNewLineageOverlappingTXIDs(t *testing.T) {
	for _, ps := range []int{4096, 1024} {
		t.Run(fmt.Sprint("ps", ps), func(t *testing.T) {
			w := newWorld(t, 4096, false)
			old := w.Snapshot()
			r := w.openReplica()
			defer r.Close()
			f := w.manual(r)
			mustStep(t, f)
			for range 4 {
				w.InsertRows(3, 900)
				w.Commit() // 2..5
			}
			mustStep(t, f)
			w.checkHead(r, 5, "old lineage")
			w.Remove(old)
			for txid := ltx.TXID(2); txid <= 5; txid++ {
				w.Remove(worldtest.L0(txid))
			}
			w2 := newWorld(t, ps, false)
			w2.StoreDir = w.StoreDir
			w2.InsertRows(7, 333)
			w2.Commit() // 2
			w2.Remove(worldtest.L0(2))
			w2.Snapshot()
			for range 6 {
				w2.InsertRows(2, 100)
				w2.Commit() // 3..8
			}
			for i := range 3 {
				if err := step(t, f); err != nil {
					t.Logf("step %d: %v (head %d)", i, err, r.Head().TXID)
				}
			}
			w2.checkHead(r, 8, "new lineage")
		})
	}
}
