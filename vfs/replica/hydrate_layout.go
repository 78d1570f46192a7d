package replica

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/pierrec/lz4/v4"
	"github.com/superfly/ltx"
)

// snapshotLayout is where every page's frame lies in a snapshot file, as
// its page index says it. A lazy bootstrap reads frames by these offsets
// before it has the rest of the file, so the index is held to account for
// every byte between the header and itself: frames of pages 1..commit in
// order (the lock page has none), each right after the one before, the
// first right after the header, the last followed by the page block's end
// marker and then the index. An index that breaks any of this is corrupt.
//
// Memory: 8 bytes per page (about 0.2% of a database of 4 KiB pages).
type snapshotLayout struct {
	hdr      ltx.Header
	hdrRaw   []byte // the file's first ltx.HeaderSize bytes
	size     int64  // the file's listed size
	indexOff int64  // where the page index starts: the end marker's end
	// offs[i] is where page i+1's frame starts, offs[commit] where the
	// last frame ends; the lock page's frame is empty (offs[i] == offs[i+1]).
	offs    []int64
	trailer ltx.Trailer
}

// tailSize is what follows the index records: its size field and the trailer.
const tailSize = 8 + ltx.TrailerSize

// endMarkerSize is the empty page header that ends the page block.
const endMarkerSize = ltx.PageHeaderSize

// frame is where page pgno's frame is: offset and length.
func (l *snapshotLayout) frame(pgno uint32) (int64, int64) {
	return l.offs[pgno-1], l.offs[pgno] - l.offs[pgno-1]
}

// maxFrame is the longest frame a page can take: its header, the size
// field, and an LZ4 block of at most CompressBlockBound bytes.
func maxFrame(ps uint32) int64 {
	return ltx.PageHeaderSize + 4 + int64(lz4.CompressBlockBound(int(ps)))
}

// indexBounds checks the index size field (the 8 bytes before the
// trailer) against the file and returns where the index starts.
func indexBounds(hdr ltx.Header, size int64, sizeField []byte) (int64, error) {
	n := binary.BigEndian.Uint64(sizeField)
	// Every page but the lock page has a record of at least 3 bytes; no
	// record takes more than three 10-byte varints.
	pages := int64(hdr.Commit)
	if hdr.Commit >= ltx.LockPgno(hdr.PageSize) {
		pages--
	}
	least, most := uint64(3*pages+1), uint64(30*pages+1)
	if n < least || n > most || int64(n) > size-ltx.HeaderSize-endMarkerSize-tailSize {
		return 0, corrupt(fmt.Errorf("page index of %d bytes for %d pages in a file of %d bytes", n, pages, size))
	}
	return size - tailSize - int64(n), nil
}

// parseIndex reads the index records, the size field and the trailer from
// r (the file from indexOff to its end) and checks them against the
// layout's rules. With offs nil it fills l.offs; otherwise it checks that
// the index is the one l.offs holds (the stream's second copy of it).
func (l *snapshotLayout) parseIndex(r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	ps, commit := l.hdr.PageSize, l.hdr.Commit
	lock := ltx.LockPgno(ps)
	fill := l.offs == nil
	if fill {
		// Grown as records come, not sized by the header's commit: a
		// header's claim is bounded only by the listed size (12 bytes a
		// page of 512 pass the guard), and 8 bytes a page of it would be
		// allocated before a byte of the index had arrived.
		l.offs = make([]int64, 0, min(int(commit)+1, 1<<16))
	}
	// r holds exactly the index's bytes (as its size field says) and the
	// tail: records that run past them are the file's fault, while a read
	// that fails or ends within them is the store's (a broken or short
	// body), which is retried, not taken for a corrupt snapshot.
	var consumed int64
	limit := l.size - l.indexOff - tailSize
	varint := func() (uint64, error) {
		var x uint64
		for i, s := 0, uint(0); i < binary.MaxVarintLen64; i, s = i+1, s+7 {
			if consumed >= limit {
				return 0, corrupt(fmt.Errorf("page index: its records run past the %d bytes its size field gives", limit))
			}
			b, err := br.ReadByte()
			if err != nil {
				return 0, fmt.Errorf("read page index: %w", noEOF(err))
			}
			consumed++
			if b < 0x80 {
				if i == binary.MaxVarintLen64-1 && b > 1 {
					return 0, corrupt(errors.New("page index: varint overflows 64 bits"))
				}
				return x | uint64(b)<<s, nil
			}
			x |= uint64(b&0x7f) << s
		}
		return 0, corrupt(errors.New("page index: varint too long"))
	}
	next, end := uint32(1), int64(ltx.HeaderSize)
	for {
		pgno, err := varint()
		if err != nil {
			return err
		}
		if pgno == 0 {
			break
		}
		off, err := varint()
		if err != nil {
			return err
		}
		n, err := varint()
		if err != nil {
			return err
		}
		if next == lock {
			if err := l.setOff(fill, next, end); err != nil {
				return err
			}
			next++
		}
		switch {
		case next > commit || pgno != uint64(next):
			return corrupt(fmt.Errorf("page index: page %d where page %d belongs", pgno, next))
		case off != uint64(end):
			return corrupt(fmt.Errorf("page index: page %d at offset %d, not right after the frame before (%d)", pgno, off, end))
		case n < ltx.PageHeaderSize+4+1 || int64(n) > maxFrame(ps) || off > math.MaxInt64-n:
			return corrupt(fmt.Errorf("page index: page %d has a frame of %d bytes", pgno, n))
		}
		if err := l.setOff(fill, next, end); err != nil {
			return err
		}
		end += int64(n)
		next++
	}
	if next == lock && commit >= lock {
		if err := l.setOff(fill, next, end); err != nil {
			return err
		}
		next++
	}
	if next != commit+1 {
		return corrupt(fmt.Errorf("page index ends at page %d of %d", next-1, commit))
	}
	if err := l.setOff(fill, next, end); err != nil {
		return err
	}
	if end+endMarkerSize != l.indexOff {
		return corrupt(fmt.Errorf("page index: the frames end at %d, but the index starts at %d", end, l.indexOff))
	}
	var tail [tailSize]byte
	if _, err := io.ReadFull(br, tail[:]); err != nil {
		return fmt.Errorf("read page index trailer: %w", noEOF(err))
	}
	if got := binary.BigEndian.Uint64(tail[:8]); got != uint64(consumed) {
		return corrupt(fmt.Errorf("page index size field says %d bytes, the index has %d", got, consumed))
	}
	var t ltx.Trailer
	if err := t.UnmarshalBinary(tail[8:]); err != nil {
		return corrupt(fmt.Errorf("trailer: %w", err))
	}
	if fill {
		l.trailer = t
	} else if t != l.trailer {
		return corrupt(errors.New("the trailer changed since the lazy bootstrap began"))
	}
	if _, err := br.ReadByte(); err == nil {
		return corrupt(errors.New("bytes after the trailer"))
	} else if err != io.EOF {
		return fmt.Errorf("read after the trailer: %w", err)
	}
	return nil
}

func (l *snapshotLayout) setOff(fill bool, pgno uint32, off int64) error {
	if fill {
		if int(pgno-1) != len(l.offs) { // parseIndex sets pages 1, 2, ... in order
			return corrupt(fmt.Errorf("page index: page %d set out of order", pgno))
		}
		if len(l.offs) == cap(l.offs) { // doubled, up to the commit's pages and no further
			grown := make([]int64, len(l.offs), min(2*cap(l.offs), int(l.hdr.Commit)+1))
			copy(grown, l.offs)
			l.offs = grown
		}
		l.offs = append(l.offs, off)
	} else if l.offs[pgno-1] != off {
		return corrupt(fmt.Errorf("page index: page %d moved from %d to %d since the lazy bootstrap began", pgno, l.offs[pgno-1], off))
	}
	return nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// decodeFrame decodes one page frame, which the index put at this page's
// place, into dst (one page): the frame must name the page, use the LZ4
// block format with a size field that accounts for exactly the rest of
// the frame, and decompress to exactly one page. LZ4 blocks carry no
// checksum: what this proves is that the bytes are a well-formed frame of
// this page at this place; whether they are the bytes the producer wrote
// only the file checksum tells, once the whole file has streamed (see
// Hydration).
func decodeFrame(b []byte, pgno uint32, dst []byte) error {
	if len(b) < ltx.PageHeaderSize+4 {
		return corrupt(fmt.Errorf("page %d: frame of %d bytes", pgno, len(b)))
	}
	var ph ltx.PageHeader
	if err := ph.UnmarshalBinary(b); err != nil {
		return corrupt(fmt.Errorf("page %d: %w", pgno, err))
	}
	if ph.Pgno != pgno {
		return corrupt(fmt.Errorf("the frame of page %d says page %d", pgno, ph.Pgno))
	}
	if ph.Flags != ltx.PageHeaderFlagSize {
		// The LZ4 frame format of older producers has no size field to
		// bound a frame by: such snapshots bootstrap in full.
		return fmt.Errorf("page %d: frame flags 0x%04x: %w", pgno, ph.Flags, errOldFrames)
	}
	n := binary.BigEndian.Uint32(b[ltx.PageHeaderSize:])
	body := b[ltx.PageHeaderSize+4:]
	if int64(n) != int64(len(body)) {
		return corrupt(fmt.Errorf("page %d: block of %d bytes in a frame that leaves %d", pgno, n, len(body)))
	}
	got, err := lz4.UncompressBlock(body, dst)
	if err != nil {
		return corrupt(fmt.Errorf("page %d: decompress: %w", pgno, err))
	}
	if got != len(dst) {
		return corrupt(fmt.Errorf("page %d: decompressed to %d bytes, not a page of %d", pgno, got, len(dst)))
	}
	if pgno == 1 {
		return checkPage1(dst, uint32(len(dst)))
	}
	return nil
}

// errOldFrames says a snapshot uses LZ4 frames rather than blocks: it
// cannot be hydrated lazily, only downloaded in full.
var errOldFrames = errors.New("the snapshot uses the LZ4 frame format, which a lazy bootstrap cannot read by range")

// IsLazyUnsupported says the snapshot cannot be bootstrapped lazily (but
// can in full).
func IsLazyUnsupported(err error) bool { return errors.Is(err, errOldFrames) }
