package replica

import (
	"errors"
	"os"
	"strings"
	"testing"
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
	w.insertRows(7, 400)
	w.advance(w.ref.image())
	r, f := w.bootstrapped()
	w.insertRows(3, 900)
	w.commit() // 3, no checksums
	mustStep(t, f)
	w.checkHead(r, 3, "without checksums")
	if c := r.Head().Checksum; c != 0 {
		t.Fatalf("checksum %s after files that carry none; want unknown (0)", c)
	}
	state, err := os.ReadFile(w.path + "-replica-state")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(state), `"checksum"`) {
		t.Errorf("the state file names a checksum nobody gave:\n%s", state)
	}

	// The producer starts writing checksums.
	w.pub.NoChecksum = false
	w.insertRows(3, 900)
	w.commit() // 4
	mustStep(t, f)
	w.checkHead(r, 4, "the first file with checksums")
	if got, want := r.Head().Checksum, w.sums[4]; got != want {
		t.Fatalf("checksum %s at TXID 4, want the primary's %s", got, want)
	}
	w.insertRows(3, 900)
	w.commit() // 5: tracked from the computed checksum
	mustStep(t, f)
	w.checkHead(r, 5, "tracked")
	if got, want := r.Head().Checksum, w.sums[5]; got != want {
		t.Fatalf("checksum %s at TXID 5, want %s", got, want)
	}

	// A replica with an unknown checksum refuses a file that claims another
	// pre-apply state.
	w2 := newWorld(t, 4096, true)
	w2.advance(w2.ref.image())
	w2.snapshot()
	r2 := w2.openReplica()
	defer r2.Close()
	mustStep(t, w2.manual(r2))
	w2.pub.NoChecksum = false
	w2.insertRows(3, 900)
	txid := w2.advance(w2.ref.image())
	w2.sums[txid-1] ^= 0x10 // the producer's idea of TXID 2 differs
	if _, err := applyFile(r2, w2.encode(txid, txid)); !errors.Is(err, ErrChainBroken) {
		t.Fatalf("a file whose pre-apply checksum differs: %v; want ErrChainBroken", err)
	}
}
