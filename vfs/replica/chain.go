package replica

// chainIndex finds a page in a chain of versions without walking it: a
// reader pinned deep below the head (a long transaction keeps folds back
// while versions pile up) would otherwise test every newer version's
// segment, for every page it reads. Guarded by Replica.mu.
type chainIndex struct {
	// pages lists, for each page, the unfolded versions of the chain whose
	// segments hold it, oldest first (ascending seq).
	pages map[uint32][]*Version
	// full is the unfolded staged snapshot the chain starts with, if any:
	// it holds every page no later version changed.
	full *Version
	// root is the version the base file holds for this chain, once full
	// is nil (or when the chain never had one).
	root *Version
	// bits mirrors which pages are keys of pages, for Direct; noDirect is
	// set if it could not grow (then every read goes through ReadAt).
	bits     *pageBits
	noDirect bool
}

func newChainIndex(bits *pageBits) *chainIndex {
	return &chainIndex{pages: make(map[uint32][]*Version), bits: bits}
}

// find returns the newest version at or below seq that holds pgno.
func (c *chainIndex) find(pgno uint32, seq uint64) *Version {
	l := c.pages[pgno]
	lo, hi := 0, len(l) // the first entry newer than seq is in [lo, hi]
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if l[m].seq <= seq {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return nil
	}
	return l[lo-1]
}

// add records a newly published version's pages.
func (c *chainIndex) add(v *Version) {
	for pgno := range v.seg.pages {
		c.pages[pgno] = append(c.pages[pgno], v)
		if err := c.bits.set(pgno); err != nil {
			c.noDirect = true
		}
	}
}

// folded forgets a version whose pages the base file now holds.
func (c *chainIndex) folded(v *Version) {
	if v.seg.full {
		if c.full == v {
			c.full = nil
		}
		return
	}
	for pgno := range v.seg.pages {
		l := c.pages[pgno]
		for i, x := range l { // v is the oldest: folds go oldest first
			if x == v {
				l = append(l[:i:i], l[i+1:]...)
				break
			}
		}
		if len(l) == 0 {
			delete(c.pages, pgno)
			c.bits.clear(pgno) // after the fold wrote the page: see Direct
		} else {
			c.pages[pgno] = l
		}
	}
}
