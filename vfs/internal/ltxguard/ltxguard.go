// Package ltxguard checks an LTX stream's header and page frames against
// what the file's name and walrust's limits allow, as the bytes pass,
// before the ltx decoder sees them.
//
// The decoder trusts what it reads: it allocates a page frame's stated size
// (up to 4 GiB) before reading it, takes the header's TXIDs and commit as
// given, and lets a snapshot skip pages. A file checksum proves only that
// the file is what its writer wrote, not that its writer was honest. A
// Reader sits between the store and the decoder and withholds every byte
// from the first field that breaks a rule on, so the decoder never acts on
// it: it fails reading that field, with the Reader's error.
package ltxguard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/pierrec/lz4/v4"
	"github.com/superfly/ltx"
)

// ErrInvalid is wrapped by every error a Reader reports about the stream.
var ErrInvalid = errors.New("invalid LTX file")

// Want is what a file must be.
type Want struct {
	// MinTXID and MaxTXID are the TXIDs the file's name gives; the
	// header must give the same.
	MinTXID, MaxTXID ltx.TXID
	// Snapshot is set for a file listed as a snapshot (level 9): its header
	// must say MinTXID 1. A file whose TXIDs start at 1, in any level (a
	// compaction from the first TXID), must hold every page from 1 to its
	// commit but the lock page, in order.
	Snapshot bool
	// MaxSize bounds the database the file describes: commit × page size.
	MaxSize int64
	// GrowFrom is the commit of the database the file applies to (0 for
	// a snapshot, or unknown). A file whose commit is larger grew the
	// database, and holds every page past GrowFrom (SQLite writes each
	// page it adds): a commit raised without them would have the replica
	// size files, and serve pages, by a claim.
	GrowFrom uint32
	// GrowPageSize is the page size GrowFrom counts in: a file of another
	// page size does not continue that database at all (its caller says
	// so), and is not held to GrowFrom.
	GrowPageSize uint32
	// Size is the file's size as listed (0: unknown). The pages the header
	// says the file must hold each take some bytes, so a header that
	// claims more than the file can hold is refused before anything is
	// sized by it.
	Size int64
}

// grows says whether the file grows the database it applies to.
func (g *Reader) grows() bool {
	w, h := &g.want, &g.header
	return w.GrowFrom > 0 && w.GrowPageSize == h.PageSize && h.Commit > w.GrowFrom
}

// minFrameBytes is the least a page of size ps takes in a file: its page
// header, its size field, and an LZ4 block, which needs at least one byte
// for every 255 it expands to.
func minFrameBytes(ps uint32) int64 { return ltx.PageHeaderSize + 4 + int64(ps)/256 }

// mustHold is how many pages the file must hold: a snapshot every page but
// the lock page; a file that grows the database every page past GrowFrom
// but the lock page.
func (g *Reader) mustHold() int64 {
	h := &g.header
	from := uint32(0)
	switch {
	case h.IsSnapshot():
	case g.grows():
		from = g.want.GrowFrom
	default:
		return 0
	}
	n := int64(h.Commit - from)
	if lock := ltx.LockPgno(h.PageSize); lock > from && lock <= h.Commit {
		n--
	}
	return n
}

// denseFrom says whether pages past from must come one after the other up to
// the commit: all of a snapshot's, and those a growing file adds.
func (g *Reader) denseFrom() (uint32, bool) {
	h := &g.header
	switch {
	case h.IsSnapshot():
		return 0, true
	case g.grows():
		return g.want.GrowFrom, true
	}
	return 0, false
}

// Reader passes an LTX stream through while it checks it.
type Reader struct {
	r    io.Reader
	want Want
	err  error // the first rule broken; every later Read returns it

	p      parser
	header ltx.Header

	// The LZ4 frame being walked (see parser.go).
	frameFlags    byte
	frameBlockMax int
}

// NewReader checks the stream r against want.
func NewReader(r io.Reader, want Want) *Reader {
	g := &Reader{r: r, want: want}
	g.p.need(ltx.HeaderSize, g.onHeader)
	return g
}

// Err is the rule the stream broke, or nil.
func (g *Reader) Err() error { return g.err }

// Read reads from the stream and returns the bytes before the first field
// that breaks a rule; from then on, only the error.
func (g *Reader) Read(b []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, rerr := g.r.Read(b)
	ok, err := g.p.feed(b[:n])
	if err != nil {
		g.err = fmt.Errorf("%w: %w", ErrInvalid, err)
		return ok, g.err
	}
	return n, rerr
}

func (g *Reader) onHeader(b []byte) error {
	h := &g.header
	if err := h.UnmarshalBinary(b); err != nil {
		return fmt.Errorf("header: %w", err)
	}
	if err := h.Validate(); err != nil {
		return fmt.Errorf("header: %w", err)
	}
	w := g.want
	if h.MinTXID != w.MinTXID || h.MaxTXID != w.MaxTXID {
		return fmt.Errorf("header says TXIDs %s-%s, its name says %s-%s", h.MinTXID, h.MaxTXID, w.MinTXID, w.MaxTXID)
	}
	if w.Snapshot && !h.IsSnapshot() {
		return fmt.Errorf("listed as a snapshot, but its TXIDs start at %s, not 1", h.MinTXID)
	}
	if size := int64(h.Commit) * int64(h.PageSize); size > w.MaxSize {
		return fmt.Errorf("database of %d pages of %d bytes (%d bytes) exceeds the maximum size of %d bytes", h.Commit, h.PageSize, size, w.MaxSize)
	}
	if h.Commit == 0 {
		return errors.New("commit of 0 pages")
	}
	if n := g.mustHold(); w.Size > 0 && n*minFrameBytes(h.PageSize) > w.Size {
		return fmt.Errorf("a file of %d bytes cannot hold the %d pages its header calls for (at least %d bytes each)", w.Size, n, minFrameBytes(h.PageSize))
	}
	g.p.need(ltx.PageHeaderSize, g.onPageHeader)
	return nil
}

// onPageHeader checks one page header: page numbers ascend within the
// commit, and a snapshot's come one after the other but for the lock page.
func (g *Reader) onPageHeader(b []byte) error {
	pgno := binary.BigEndian.Uint32(b[0:])
	flags := binary.BigEndian.Uint16(b[4:])
	h := &g.header
	last := g.p.lastPgno
	from, dense := g.denseFrom()
	if pgno == 0 && flags == 0 { // the end of the pages
		if dense && last != h.Commit && !(last == h.Commit-1 && h.Commit == ltx.LockPgno(h.PageSize)) {
			if h.IsSnapshot() {
				return fmt.Errorf("snapshot ends at page %d, before its commit %d", last, h.Commit)
			}
			return fmt.Errorf("the database grows from %d to %d pages, but the file ends at page %d", from, h.Commit, max(last, from))
		}
		g.p.done = true // the page index and trailer allocate nothing
		return nil
	}
	switch {
	case pgno == 0:
		return fmt.Errorf("page header with page 0 after page %d", last)
	case pgno > h.Commit:
		return fmt.Errorf("page %d beyond commit %d", pgno, h.Commit)
	case pgno <= last:
		return fmt.Errorf("page %d after page %d", pgno, last)
	case pgno == ltx.LockPgno(h.PageSize):
		return fmt.Errorf("page %d is the lock page", pgno)
	case h.IsSnapshot() && pgno != expectedNext(last, h.PageSize):
		return fmt.Errorf("snapshot skips from page %d to page %d", last, pgno)
	case dense && pgno > from && pgno != expectedNext(max(last, from), h.PageSize):
		return fmt.Errorf("the database grows from %d to %d pages, but the file skips from page %d to page %d", from, h.Commit, max(last, from), pgno)
	}
	if flags&^ltx.PageHeaderFlagSize != 0 {
		return fmt.Errorf("page %d: unknown flags 0x%04x", pgno, flags)
	}
	g.p.lastPgno = pgno
	if flags&ltx.PageHeaderFlagSize != 0 {
		g.p.need(4, g.onBlockSize)
	} else {
		g.p.need(4, g.onFrameMagic)
	}
	return nil
}

func expectedNext(last uint32, pageSize uint32) uint32 {
	next := last + 1
	if next == ltx.LockPgno(pageSize) {
		next++
	}
	return next
}

// onBlockSize checks an LZ4 block's compressed size: never more than a page
// can take compressed.
func (g *Reader) onBlockSize(b []byte) error {
	n := binary.BigEndian.Uint32(b)
	if n == 0 || int64(n) > int64(lz4.CompressBlockBound(int(g.header.PageSize))) {
		return fmt.Errorf("page %d: compressed size %d for a page of %d bytes", g.p.lastPgno, n, g.header.PageSize)
	}
	g.p.skip(int64(n), g.nextPage)
	return nil
}

func (g *Reader) nextPage() { g.p.need(ltx.PageHeaderSize, g.onPageHeader) }

// CheckHeader checks a file's header on its own, by the rules a Reader
// applies to it: what a lazy bootstrap, which reads a snapshot's header
// and page frames by range rather than as one stream, holds it to.
func CheckHeader(b []byte, want Want) (ltx.Header, error) {
	g := &Reader{want: want}
	if len(b) != ltx.HeaderSize {
		return ltx.Header{}, fmt.Errorf("%w: header of %d bytes", ErrInvalid, len(b))
	}
	if err := g.onHeader(b); err != nil {
		return ltx.Header{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return g.header, nil
}
