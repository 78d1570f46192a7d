package replica

import (
	"errors"
	"strings"
	"testing"

	"github.com/walrust/walrust/vfs/testkit/ltxtest"
)

// TestGrowthWithoutPagesRejected: a file that grew the database without
// the pages it added used to be applied: a version then read those pages
// from whatever older version still held them, and a merge of those older
// versions changed what one pinned transaction read. Such a file is
// rejected.
func TestGrowthWithoutPagesRejected(t *testing.T) {
	w := newWorld(t, 512, true)
	r, _ := w.bootstrapped()
	img := w.Image(1)
	c0 := uint32(len(img) / 512)
	far := c0 + 5
	p1 := ltxtest.CraftPage{Pgno: 1, Data: img[:512]}
	// Grows to far, writing only page far.
	data := ltxtest.Craft(w.CraftHeader(2, 2, far), []ltxtest.CraftPage{p1, {Pgno: far, Data: make([]byte, 512)}}, 0)
	_, err := applyFile(r, data)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "skips") {
		t.Fatalf("apply a file that grows the database without its new pages: %v; want it rejected", err)
	}
	if r.Head().TXID != 1 {
		t.Fatalf("replica at TXID %d", r.Head().TXID)
	}
}
