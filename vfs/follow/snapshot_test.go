package follow

import (
	"strings"
	"testing"

	"github.com/walrust/walrust/vfs/store"
)

// TestOnlySnapshotRejected: the store's only snapshot is corrupt. Every
// poll must keep naming it — not claim that the store has no snapshot —
// and a good snapshot, once it lands, bootstraps the replica.
func TestOnlySnapshotRejected(t *testing.T) {
	w := newWorld(t, 1024, false)
	w.InsertRows(10, 300)
	w.Advance(w.Ref.Image()) // 2
	good := w.Encode(1, 2)
	fi := store.FileInfo{Level: store.SnapshotLevel, MinTXID: 1, MaxTXID: 2}
	w.WriteRaw(fi, good[:len(good)-100])
	r := w.openReplica()
	defer r.Close()
	f := w.manual(r)
	for i := range 3 {
		err := step(t, f)
		if err == nil || !strings.Contains(err.Error(), fi.Name()) || strings.Contains(err.Error(), "empty") {
			t.Fatalf("poll %d: %v; want an error naming the rejected %s", i, err, fi)
		}
	}
	if r.Head() != nil {
		t.Fatal("a corrupt snapshot was installed")
	}
	w.InsertRows(1, 10)
	w.Advance(w.Ref.Image()) // 3
	w.Snapshot()
	mustStep(t, f)
	w.checkHead(r, 3, "good snapshot")
}
