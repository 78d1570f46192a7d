package replica

import (
	"fmt"
	"testing"

	"github.com/superfly/ltx"
)

// TestNewLineageOverlappingTXIDs: the store restarts from a new snapshot
// whose TXIDs overlap the replica's (with checksums, or another page size,
// the first new file does not follow). The replica re-bootstraps to the new
// lineage instead of staying stuck behind that file.
func TestNewLineageOverlappingTXIDs(t *testing.T) {
	for _, ps := range []int{4096, 1024} {
		t.Run(fmt.Sprint("ps", ps), func(t *testing.T) {
			w := newWorld(t, 4096, false)
			old := w.snapshot()
			r := w.openReplica()
			defer r.Close()
			f := w.manual(r)
			mustStep(t, f)
			for range 4 {
				w.insertRows(3, 900)
				w.commit() // 2..5
			}
			mustStep(t, f)
			w.checkHead(r, 5, "old lineage")
			w.remove(old)
			for txid := ltx.TXID(2); txid <= 5; txid++ {
				w.remove(l0(txid))
			}
			w2 := newWorld(t, ps, false)
			w2.storeDir = w.storeDir
			w2.insertRows(7, 333)
			w2.commit() // 2
			w2.remove(l0(2))
			w2.snapshot()
			for range 6 {
				w2.insertRows(2, 100)
				w2.commit() // 3..8
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
