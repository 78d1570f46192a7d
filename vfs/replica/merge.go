package replica

import (
	"fmt"
	"slices"
)

// Behind a reader that keeps a version pinned (a long read transaction),
// no fold can pass it, and every file applied meanwhile would keep a
// segment — a file on disk and an open descriptor — until the reader ends:
// thousands of them behind a reader that never ends. Merging bounds them.
//
// No reader can ever pin a version that is neither the head nor pinned
// now (pins are only taken on the head, in Go or at the gate), so a run of such versions serves
// no one but the versions after it, which see only each page's newest
// image in the run: one segment holding those images serves them the same.
// Merges are tiered, like an LSM tree's: mergeFanIn versions that each
// stand for about as many files (the same tier) become one of the next
// tier, so that each file's pages are rewritten once per tier (a handful of
// times however long the reader stays), and the versions held stay under
// (mergeFanIn-1) × tiers + the pinned ones.
const mergeFanIn = 16

// tier groups versions by how many files they stand for: 1–15 files is
// tier 0, 16–255 tier 1, and so on.
func tier(files int) int {
	t := 0
	for files >= mergeFanIn {
		files /= mergeFanIn
		t++
	}
	return t
}

// Merge merges runs of mergeFanIn versions of one tier that no reader pins
// or can pin. It reports how many merges it made. Only the follower calls
// it (as it does Apply and Fold).
func (r *Replica) Merge() (int, error) {
	merged := 0
	for {
		run := r.mergeable()
		if run == nil {
			return merged, nil
		}
		if err := r.merge(run); err != nil {
			return merged, fmt.Errorf("merge TXIDs %s-%s: %w", run[0].seg.meta.MinTXID, run[len(run)-1].TXID, err)
		}
		merged++
	}
}

// mergeable finds the oldest run of mergeFanIn consecutive versions of one
// tier in the head's chain that are unpinned, unfolded, not the head and
// not a staged snapshot; nil if there is none.
func (r *Replica) mergeable() []*Version {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var chain []*Version // oldest first, the head left out
	if r.head == nil {
		return nil
	}
	for v := r.head.parent; v != nil && v.seg != nil && !v.folded && !v.seg.full; v = v.parent {
		chain = append(chain, v)
	}
	slices.Reverse(chain)
	start := 0
	for i, v := range chain {
		if r.held(v) || tier(v.files()) != tier(chain[start].files()) {
			start = i
			if r.held(v) {
				start = i + 1
			}
			continue
		}
		if i-start+1 == mergeFanIn {
			return chain[start : i+1]
		}
	}
	return nil
}

// merge writes the newest image of every page of run into one segment,
// then swaps the version it makes in for the run.
func (r *Replica) merge(run []*Version) error {
	last := run[len(run)-1]
	pgnos := make(map[uint32]*Version) // page → the newest version of the run holding it
	for _, v := range run {
		for pgno := range v.seg.pages {
			if pgno <= last.Commit { // pages past the commit are gone at last
				pgnos[pgno] = v
			}
		}
	}
	order := make([]uint32, 0, len(pgnos))
	for pgno := range pgnos {
		order = append(order, pgno)
	}
	slices.Sort(order)

	w, err := r.createSegment(last.PageSize)
	if err != nil {
		return err
	}
	buf := make([]byte, last.PageSize)
	for _, pgno := range order {
		// The run's segments are not folded or closed while this runs:
		// only the follower does either, and it is here.
		if err := pgnos[pgno].readSegment(pgno, buf); err != nil {
			w.abort()
			return err
		}
		if err := w.writePage(pgno, buf); err != nil {
			w.abort()
			return err
		}
	}
	meta := last.seg.meta
	meta.MinTXID = run[0].seg.meta.MinTXID
	seg, err := w.finish(meta)
	if err != nil {
		return err
	}
	hook("merge:written")

	m := &Version{
		locks: &r.versionLocks, TXID: last.TXID, PageSize: last.PageSize, Commit: last.Commit, Timestamp: last.Timestamp,
		Checksum: last.Checksum, Page1Checksum: last.Page1Checksum, Counter: last.Counter,
		seg: seg, parent: run[0].parent, base: last.base, seq: last.seq, chain: last.chain,
	}
	for _, v := range run {
		m.merged += v.files()
	}
	r.mu.Lock()
	for child := r.head; child != nil; child = child.parent {
		if child.parent == last {
			child.parent = m
			break
		}
	}
	m.chain.replace(run, m)
	r.mu.Unlock()

	// A crash before these removals leaves both the run's segments and the
	// merged one: replay takes the first of the run, then the merged one
	// (its TXIDs continue the head), and drops the rest as already applied.
	for _, v := range run {
		v.seg.close()
		if err := v.seg.remove(); err != nil {
			return err
		}
	}
	hook("merge:done")
	return nil
}

// files is how many applied files v stands for.
func (v *Version) files() int { return max(1, v.merged) }

// replace swaps m in for the versions of run (consecutive in the chain,
// oldest first) in the page index. The pages are the same, so the bits do
// not change. The caller holds Replica.mu.
func (c *chainIndex) replace(run []*Version, m *Version) {
	first, last := run[0].seq, run[len(run)-1].seq
	for pgno := range m.seg.pages {
		l := c.pages[pgno]
		i := 0
		for i < len(l) && l[i].seq < first {
			i++
		}
		j := i
		for j < len(l) && l[j].seq <= last {
			j++
		}
		c.pages[pgno] = slices.Replace(l, i, j, m)
	}
	// Pages of the run past its last commit are not in m: drop them.
	for _, v := range run {
		for pgno := range v.seg.pages {
			if _, ok := m.seg.pages[pgno]; ok {
				continue
			}
			l := slices.DeleteFunc(c.pages[pgno], func(x *Version) bool { return x.seq >= first && x.seq <= last })
			if len(l) == 0 {
				delete(c.pages, pgno)
				c.bits.clear(pgno) // read past the commit: zeros, whoever reads
			} else {
				c.pages[pgno] = l
			}
		}
	}
}
