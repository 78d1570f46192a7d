package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/superfly/ltx"
)

// Version is one database state the replica can serve: a TXID, its size, and
// the pages that changed since its parent. The chain of parents ends at the
// version the base file holds (a root, or a version that has been folded).
//
// A read transaction pins one Version at its SHARED lock and reads every page
// through it until it unlocks, so it sees exactly one TXID however many newer
// versions the follower applies meanwhile.
type Version struct {
	locks *versionLocks // the replica's

	TXID          ltx.TXID
	PageSize      uint32
	Commit        uint32 // database size in pages
	Timestamp     time.Time
	Checksum      ltx.Checksum
	Page1Checksum ltx.Checksum

	// Counter is the change counter served at offsets 24 and 92 of page 1.
	Counter uint32

	seg *segment // pages of this version; nil for a root
	// hyd is set on a snapshot served while it hydrates (a lazy
	// bootstrap): its pages not local yet are fetched as they are read.
	hyd    *Hydration
	parent *Version
	base   *baseFile

	// seq orders the versions of a replica by publication; chain indexes
	// the pages of the chain v belongs to (set when v is published; nil
	// for a version that reads only the base file).
	seq   uint64
	chain *chainIndex

	// folded is set (under Replica.mu) once the base file holds this version:
	// a page lookup that reaches it reads the base file.
	folded bool
	pins   atomic.Int32

	// merged is how many applied files a merged version stands for (see
	// Merge); 0 for a version of one file.
	merged int

	// expired is set, under Replica.mu, once v held back more than a
	// replica may keep (see expire.go): its reads fail from then on, and
	// folds pass it. revokers are the readers outside Go that read v
	// directly, guarded by Replica.revokeMu.
	expired    atomic.Bool
	expiredWhy string
	revokers   map[Revoker]struct{}
}

// DirectRead is what a reader outside Go (the VFS's C layer) needs to read
// the pages of a pinned version from the base file itself, for as long as
// the version stays pinned.
type DirectRead struct {
	FD    int            // the base file
	Limit int64          // bytes of the version the base file can serve
	Bits  unsafe.Pointer // a pageBits mapping: pages to read through ReadAt instead; nil: none
	Pages uint32         // pages Bits covers; pages past it are the base file's
	// Page1 says the base file's page 1 is v's as ReadAt serves it (v is
	// the version the file holds: a fold or an install wrote page 1 with
	// its header patched for v), so it too can be read directly.
	Page1 bool
}

// Direct says how v's pages can be read from the base file without ReadAt
// (page 1 too when DirectRead.Page1 says so: otherwise ReadAt patches its
// header), or false when they cannot.
//
// Why the base file's pages stay right for v while it is pinned: a fold
// writes into the file only versions that no pinned version is older than,
// and clears their pages' bits only after writing them; a page whose bit is
// clear is in no unfolded version of v's chain, so the file holds it as of
// v. A passive reader's version is pinned by SQLite's shared lock, which a
// fold excludes. Pages past the file's version (Limit) read through ReadAt,
// which knows they are zeros. The descriptor stays open while any replica
// or passive reader of the file in this process is open.
//
// rv, if not nil, is how the reader is stopped should v expire (see
// expire.go): it is kept with v until Undirect.
func (v *Version) Direct(rv Revoker) (DirectRead, bool) {
	v.locks.mu.RLock()
	defer v.locks.mu.RUnlock()
	d, ok := v.directLocked()
	if ok && rv != nil {
		v.locks.addRevoker(v, rv)
	}
	return d, ok
}

// directLocked is Direct without a revoker; the caller holds the
// replica's mu.
func (v *Version) directLocked() (DirectRead, bool) {
	if v.base == nil || v.base.fd < 0 || v.expired.Load() {
		return DirectRead{}, false
	}
	if v.seg == nil || v.folded { // the file holds v
		return DirectRead{FD: v.base.fd, Limit: v.Size(), Page1: true}, true
	}
	c := v.chain
	if c == nil || c.full != nil || c.root == nil || c.noDirect {
		return DirectRead{}, false // an unfolded snapshot holds every page
	}
	bits, pages := c.bits.view()
	return DirectRead{FD: v.base.fd, Limit: min(v.Size(), c.root.Size()), Bits: bits, Pages: pages}, true
}

// PagesApplied is how many pages the file that made this version held: 0
// for the version the base file holds.
func (v *Version) PagesApplied() int {
	if v.seg == nil {
		return 0
	}
	return int(v.seg.meta.PageN)
}

// Size is the database size in bytes at this version.
func (v *Version) Size() int64 { return int64(v.Commit) * int64(v.PageSize) }

// Unpin ends a read transaction that pinned v.
func (v *Version) Unpin() {
	v.pins.Add(-1)
}

// ReadAt reads the database file as of this version. Page 1 is served as a
// rollback-journal database whose change counter is the version's Counter.
// Reads past the end return io.EOF after zero-filling, as SQLite expects of
// a short read.
//
// A page of a snapshot still hydrating that is not local yet is fetched
// with no lock held (readers never hold Replica.mu across a network wait),
// then the read starts again: a bounded number of times, since every
// fetch leaves its pages local for good.
func (v *Version) ReadAt(p []byte, off int64) (int, error) {
	for tries := len(p)/max(int(v.PageSize), 1) + demandTries; ; tries-- {
		n, err := v.readAt(p, off)
		var miss *missingPage
		if !errors.As(err, &miss) || tries == 0 {
			return n, err
		}
		if err := miss.h.demand(miss.pgno); err != nil {
			return 0, err
		}
	}
}

func (v *Version) readAt(p []byte, off int64) (int, error) {
	v.locks.mu.RLock() // keeps folds and base swaps from closing what we read
	defer v.locks.mu.RUnlock()
	if v.expired.Load() { // set under the write lock: no read of v is under way
		return 0, v.expiredError()
	}

	ps := int64(v.PageSize)
	size := v.Size()
	var scratch []byte
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		if pos >= size {
			clear(p[n:])
			return n, io.EOF
		}
		pgno := uint32(pos/ps) + 1
		inPage := pos % ps
		chunk := min(int64(len(p)-n), ps-inPage)
		dst := p[n : n+int(chunk)]
		if inPage == 0 && chunk == ps {
			if err := v.readPage(pgno, dst); err != nil {
				return n, err
			}
		} else {
			if scratch == nil {
				scratch = make([]byte, ps)
			}
			if err := v.readPage(pgno, scratch); err != nil {
				return n, err
			}
			copy(dst, scratch[inPage:])
		}
		if pgno == 1 {
			v.patchHeader(dst, inPage)
		}
		n += int(chunk)
	}
	return n, nil
}

// readPage reads the primary's image of page pgno (page 1 unpatched) into
// buf: from the newest version at or below v that holds the page, found
// through the chain's index, else from where the chain rests (an unfolded
// snapshot, or the base file). The caller holds r.mu for reading.
func (v *Version) readPage(pgno uint32, buf []byte) error {
	if v.seg == nil || v.folded {
		return v.readBase(pgno, buf)
	}
	c := v.chain
	if x := c.find(pgno, v.seq); x != nil {
		return x.readSegment(pgno, buf)
	}
	if f := c.full; f != nil {
		if pgno > f.Commit {
			clear(buf) // the lock page, or past the end
			return nil
		}
		if f.hyd != nil && !f.hyd.has(pgno) {
			return &missingPage{h: f.hyd, pgno: pgno}
		}
		return f.readSegment(pgno, buf)
	}
	return c.root.readBase(pgno, buf)
}

// readSegment reads page pgno from x's segment, which holds it.
func (x *Version) readSegment(pgno uint32, buf []byte) error {
	off, _ := x.seg.lookup(pgno)
	n, err := x.seg.f.ReadAt(buf, off)
	if err == io.EOF && x.seg.full {
		clear(buf[n:]) // a trailing lock page is not stored
	} else if err != nil {
		return fmt.Errorf("read page %d of TXID %s: %w", pgno, x.TXID, err)
	}
	return nil
}

// readBase reads from the base file, where x is the version the file holds.
// Pages past its end read as zeros (the lock page is never stored).
func (x *Version) readBase(pgno uint32, buf []byte) error {
	if pgno > x.Commit {
		clear(buf)
		return nil
	}
	n, err := x.base.f.ReadAt(buf, int64(pgno-1)*int64(len(buf)))
	if err == io.EOF {
		clear(buf[n:])
		return nil
	} else if err != nil {
		return fmt.Errorf("read page %d of base file: %w", pgno, err)
	}
	return nil
}

// The first 16 bytes of page 1: SQLite's magic, and the mark a fold writes
// in its place while the base file is a mix of TXIDs (see writeFold).
const (
	headerSize   = 100 // SQLite's database header, at the start of page 1
	sqliteMagic  = "SQLite format 3\x00"
	foldingMagic = "walrust:folding\x00"
)

// checkPage1 refuses a page 1 whose header gives another page size
// (offset 16; 1 stands for 65536) than the LTX file that carries it: no
// SQLite writes one. patchHeader does not rewrite the field, and Open's
// checkBase (and a passive reader) take the page size from it: such a
// page, once folded, had the replica moved aside as changed by something
// other than walrust at every open (TestStageSnapshotPage1PageSize).
func checkPage1(page []byte, ps uint32) error {
	if got := dbPageSize(page); got != ps {
		return corrupt(fmt.Errorf("page 1 says pages of %d bytes, in a file of %d-byte pages", got, ps))
	}
	return nil
}

// patchHeader rewrites the parts of page 1's header that must differ from
// the primary's, or from the base file's: SQLite's magic (0), which the
// base file lacks while a fold is interrupted; the file format bytes (18,
// 19) say rollback journal, so SQLite never looks for -wal or -shm files;
// the change counter (24) and version-valid-for (92) are this version's
// counter, so SQLite keeps its page cache exactly while nothing changed; the
// size in pages (28) is the commit. dst holds the bytes of page 1 that
// start at offset at.
func (v *Version) patchHeader(dst []byte, at int64) {
	var hdr [headerSize]byte
	copy(hdr[:], sqliteMagic)
	hdr[18], hdr[19] = 1, 1
	binary.BigEndian.PutUint32(hdr[24:], v.Counter)
	binary.BigEndian.PutUint32(hdr[28:], v.Commit)
	binary.BigEndian.PutUint32(hdr[92:], v.Counter)
	for _, f := range [...]struct{ off, n int64 }{{0, 16}, {18, 2}, {24, 8}, {92, 4}} {
		for i := f.off; i < f.off+f.n; i++ {
			if i >= at && i < at+int64(len(dst)) {
				dst[i-at] = hdr[i]
			}
		}
	}
}
