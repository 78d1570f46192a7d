package follow

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/store"
)

// A plan is the files to apply, in order, to go from one TXID to the newest
// one the store can reach from there.
type plan struct {
	snapshot *store.FileInfo  // set when the plan starts from a snapshot
	steps    []store.FileInfo // incremental files, each covering the next TXID
	reach    ltx.TXID         // TXID after the last step
}

// catalog is a listing of every level of a store.
type catalog struct {
	files     []store.FileInfo // levels 0..MaxCompactionLevel
	snapshots []store.FileInfo
	head      ltx.TXID // newest TXID anywhere in the store
	rejected  []store.FileInfo
}

// listCatalog lists every level. It costs one request per level, so it is
// used only to start, to bootstrap and to bridge a gap — never when idle.
func listCatalog(ctx context.Context, st store.Reader, skip func(store.FileInfo) bool) (*catalog, error) {
	all, err := store.ListAll(ctx, st)
	if err != nil {
		return nil, err
	}
	return newCatalog(all, skip), nil
}

// newCatalog sorts listed files into a catalog, setting apart those skip
// says true for.
func newCatalog(all []store.FileInfo, skip func(store.FileInfo) bool) *catalog {
	c := &catalog{}
	for _, f := range all {
		if skip(f) {
			// A rejected file still shows how far the store has got: a
			// replica stuck behind it is behind, not idle.
			c.head = max(c.head, f.MaxTXID)
			c.rejected = append(c.rejected, f)
			continue
		}
		if f.Level == store.SnapshotLevel {
			if f.MinTXID != 1 {
				continue // not a snapshot, whatever its level says
			}
			c.snapshots = append(c.snapshots, f)
		} else {
			c.files = append(c.files, f)
		}
		c.head = max(c.head, f.MaxTXID)
	}
	return c
}

// chainFrom picks, step by step, the file that covers the next TXID and
// reaches furthest; ties go to the lower level (a smaller file). Greedy is
// optimal here: from any TXID, reaching further never closes a path.
// Files for which skip says true are not used.
//
// The files are walked once, in MinTXID order: the candidates for a step
// are those that start at or before the next TXID, a set that only grows,
// and the best of them reaches furthest; after the step, no file seen so
// far reaches past it. So a plan costs a sort, not steps × files (a store
// with 50,000 files took seconds per plan the other way).
func (c *catalog) chainFrom(txid ltx.TXID, skip func(store.FileInfo) bool) plan {
	slices.SortStableFunc(c.files, func(a, b store.FileInfo) int { return cmp.Compare(a.MinTXID, b.MinTXID) })
	p := plan{reach: txid}
	next := 0
	for {
		best := -1
		for ; next < len(c.files) && c.files[next].MinTXID <= p.reach+1; next++ {
			f := c.files[next]
			if f.MaxTXID <= p.reach || (skip != nil && skip(f)) {
				continue
			}
			if best < 0 || f.MaxTXID > c.files[best].MaxTXID ||
				(f.MaxTXID == c.files[best].MaxTXID && f.Level < c.files[best].Level) {
				best = next
			}
		}
		if best < 0 {
			return p
		}
		p.steps = append(p.steps, c.files[best])
		p.reach = c.files[best].MaxTXID
	}
}

// fromNewestSnapshot is the plan a bootstrap follows.
func (c *catalog) fromNewestSnapshot() (plan, error) {
	if len(c.snapshots) == 0 {
		return plan{}, errNoSnapshot
	}
	s := c.snapshots[0]
	for _, f := range c.snapshots[1:] {
		if f.MaxTXID > s.MaxTXID {
			s = f
		}
	}
	p := c.chainFrom(s.MaxTXID, nil)
	p.snapshot = &s
	return p, nil
}

var errNoSnapshot = fmt.Errorf("the store has no snapshot yet (level %d is empty)", store.SnapshotLevel)
