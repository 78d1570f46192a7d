package replica

import (
	"math/rand/v2"
	"testing"

	"github.com/superfly/ltx"
)

// TestManyPinnedVersions: readers pinned at many versions of one chain,
// whose pages later versions overwrite again and again, each read exactly
// their TXID's image — while versions pile up behind the oldest pin, and
// after every partial fold as the pins go away in a scrambled order. Page
// lookups go through the chain's index (newest version at or below the
// reader that holds the page), so this checks the index against the
// reference images at every step.
func TestManyPinnedVersions(t *testing.T) {
	w := newWorld(t, 1024, true)
	w.InsertRows(300, 200)
	w.Advance(w.Ref.Image())
	r, f := w.bootstrapped()

	rng := rand.New(rand.NewPCG(1, 2))
	var pins []*Version
	for i := range 40 {
		switch i % 4 {
		case 0: // rewrite a few rows spread over the table
			w.Ref.Exec("UPDATE t SET v = randomblob(200) WHERE id % 17 = ?", rng.IntN(17))
		case 1: // the same rows again: pages overwritten by several versions
			w.Ref.Exec("UPDATE t SET v = randomblob(200) WHERE id % 17 = 3")
		case 2: // grow
			w.InsertRows(20, 300)
		case 3: // shrink a little
			w.Ref.Exec("DELETE FROM t WHERE id IN (SELECT id FROM t ORDER BY random() LIMIT 10)")
		}
		w.Commit()
		mustStep(t, f) // applies, and folds no further than the oldest pin
		if i%3 == 1 {
			v, err := r.Pin()
			if err != nil {
				t.Fatal(err)
			}
			pins = append(pins, v)
		}
	}
	check := func(what string) {
		t.Helper()
		for _, v := range pins {
			checkVersion(t, v, w.Image(v.TXID), what)
		}
		w.checkHead(r, w.Pub.TXID, what)
	}
	check("all pinned")
	if n := segments(t, r); n < 30 {
		t.Fatalf("%d segments: the oldest pin should hold back almost every fold", n)
	}

	// Unpin in a scrambled order; after each, fold as far as the pins let
	// the replica, and check every reader that remains.
	rng.Shuffle(len(pins), func(i, j int) { pins[i], pins[j] = pins[j], pins[i] })
	for len(pins) > 0 {
		pins[0].Unpin()
		pins = pins[1:]
		mustStep(t, f)
		check("after an unpin and a fold")
		var oldest ltx.TXID
		for _, v := range pins {
			if oldest == 0 || v.TXID < oldest {
				oldest = v.TXID
			}
		}
		if oldest != 0 {
			w.checkBase(oldest, "fold held at the oldest pin")
		}
	}
	w.checkBase(w.Pub.TXID, "everything folded")
	if n := segments(t, r); n != 0 {
		t.Fatalf("%d segments left after the last unpin", n)
	}
	if c := r.Head().chain; len(c.pages) != 0 || c.full != nil || c.root != r.Head() {
		t.Fatalf("chain index after a full fold: %d pages, full %v, root is head %v", len(c.pages), c.full != nil, c.root == r.Head())
	}
}
