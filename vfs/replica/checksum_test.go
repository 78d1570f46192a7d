package replica

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walrust/walrust/vfs/testkit/ltxtest"
)

// TestChecksumUnknownUntilNeeded: a snapshot and files without database
// checksums (as Litestream writes them) leave the replica's checksum
// unknown — none is computed, none is written to the state file. When a
// file that carries checksums follows, the replica computes its checksum
// once from its pages, applies the file if its pre-apply checksum matches,
// and from then on tracks it; a file whose pre-apply checksum does not
// match breaks the chain.
func TestChecksumUnknownUntilNeeded(t *testing.T) {
	w := newWorld(t, 4096, true)
	w.InsertRows(7, 400)
	w.Advance(w.Ref.Image())
	r, f := w.bootstrapped()
	w.InsertRows(3, 900)
	w.Commit() // 3, no checksums
	mustStep(t, f)
	w.checkHead(r, 3, "without checksums")
	if c := r.Head().Checksum; c != 0 {
		t.Fatalf("checksum %s after files that carry none; want unknown (0)", c)
	}
	state, err := os.ReadFile(w.Path + "-replica-state")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(state), `"checksum"`) {
		t.Errorf("the state file names a checksum nobody gave:\n%s", state)
	}

	// The producer starts writing checksums.
	w.Pub.NoChecksum = false
	w.InsertRows(3, 900)
	w.Commit() // 4
	mustStep(t, f)
	w.checkHead(r, 4, "the first file with checksums")
	if got, want := r.Head().Checksum, w.Sum(4); got != want {
		t.Fatalf("checksum %s at TXID 4, want the primary's %s", got, want)
	}
	w.InsertRows(3, 900)
	w.Commit() // 5: tracked from the computed checksum
	mustStep(t, f)
	w.checkHead(r, 5, "tracked")
	if got, want := r.Head().Checksum, w.Sum(5); got != want {
		t.Fatalf("checksum %s at TXID 5, want %s", got, want)
	}

	// A replica with an unknown checksum refuses a file that claims another
	// pre-apply state.
	w2 := newWorld(t, 4096, true)
	w2.Advance(w2.Ref.Image())
	w2.Snapshot()
	r2 := w2.openReplica()
	defer r2.Close()
	mustStep(t, w2.manual(r2))
	w2.Pub.NoChecksum = false
	w2.InsertRows(3, 900)
	txid := w2.Advance(w2.Ref.Image())
	// The producer's idea of TXID 2 differs.
	data := ltxtest.Encode(t, w2.Image(txid-1), w2.Image(txid), w2.Pub.PageSize, txid, txid, w2.Sum(txid-1)^0x10, false, time.Now())
	if _, err := applyFile(r2, data); !errors.Is(err, ErrChainBroken) {
		t.Fatalf("a file whose pre-apply checksum differs: %v; want ErrChainBroken", err)
	}
}

// TestChecksumLoopCancels: the loop over every page of a database (the
// checksum a file with checksums needs after a snapshot without) stops
// when its context does, whatever the commit.
func TestChecksumLoopCancels(t *testing.T) {
	base, err := os.Create(filepath.Join(t.TempDir(), "empty.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	v := &Version{TXID: 1, PageSize: 512, Commit: 1 << 30, base: &baseFile{f: base}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() {
		_, err := (&Replica{}).checksumOf(ctx, v)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("checksum with a cancelled context: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the checksum loop over 2^30 pages ignores its context")
	}
}
