package replica

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"

	"github.com/pierrec/lz4/v4"
	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/internal/crc64iso"
)

// snapshotSource is a snapshot's pages, one at a time, for StageSnapshot:
// a blockReader when its pages are LZ4 blocks, else the ltx decoder.
type snapshotSource interface {
	header() ltx.Header
	// page decodes the next page into buf; io.EOF after the last.
	page(ph *ltx.PageHeader, buf []byte) error
	// finish verifies what follows the pages, and returns the database
	// checksum the trailer holds (checked against the pages when the
	// header says it has one).
	finish() (ltx.Checksum, error)
}

// openSnapshotSource reads the header of the snapshot br holds.
func openSnapshotSource(br *bufio.Reader) (snapshotSource, error) {
	if blockReadable(br) {
		return newBlockReader(br)
	}
	dec := decoderOn(br)
	if err := dec.DecodeHeader(); err != nil {
		return nil, err
	}
	return ltxSource{dec}, nil
}

// ltxSource is the ltx decoder as a snapshotSource (snapshots in the LZ4
// frame format of older producers).
type ltxSource struct{ dec *ltx.Decoder }

func (s ltxSource) header() ltx.Header                        { return s.dec.Header() }
func (s ltxSource) page(ph *ltx.PageHeader, buf []byte) error { return s.dec.DecodePage(ph, buf) }
func (s ltxSource) finish() (ltx.Checksum, error) {
	if err := s.dec.Close(); err != nil {
		return 0, err
	}
	return s.dec.Trailer().PostApplyChecksum, nil
}

// blockReader decodes a snapshot whose pages are LZ4 blocks (the
// size-prefixed frames Litestream v0.5 and walrust publish write) straight
// out of its bufio.Reader's buffer into the caller's page. The ltx decoder
// reads each page's block into a buffer it allocates for that page alone:
// a gigabyte's snapshot made the process fault in some 680 MB of fresh
// memory for them, a tenth of a bootstrap's time. It checks all that the
// decoder checks, in the same order of bytes:
//
//   - the header (the guard in front has checked it against the name);
//   - every frame: a valid page header, the block format, a size the page
//     can take, a block that decompresses to exactly one page (the decoder
//     lets a short one through, leaving the rest of the buffer as it was);
//   - the end marker, then the page index: ascending pages, frames that
//     do not overlap, as many entries as pages, the very page numbers
//     decoded, and its size field;
//   - the trailer: the file checksum over every byte but its own (the
//     pages counted decompressed, as LTX defines it), and for a snapshot
//     with checksums its database checksum; nothing after it.
type blockReader struct {
	br  *bufio.Reader
	hdr ltx.Header
	crc hash.Hash64 // the file checksum so far

	pos    int64       // the file offset of the next frame
	pages  int64       // frames decoded
	frames hash.Hash64 // (pgno, offset, size) of every frame, to hold the index to
	pgHash hash.Hash64 // for the database checksum
	dbSum  ltx.Checksum
	ended  bool     // the end marker was read
	rec    [20]byte // a frame's record for frames, kept here so as not to allocate one a page
}

// blockReadable says whether the snapshot br holds (not consumed yet) is
// one blockReader reads: its first frame is an LZ4 block.
func blockReadable(br *bufio.Reader) bool {
	b, err := br.Peek(ltx.HeaderSize + ltx.PageHeaderSize)
	if err != nil {
		return false // the ltx decoder says why
	}
	var ph ltx.PageHeader
	return ph.UnmarshalBinary(b[ltx.HeaderSize:]) == nil && ph.Flags == ltx.PageHeaderFlagSize
}

// newBlockReader reads and checks the header.
func newBlockReader(br *bufio.Reader) (*blockReader, error) {
	r := &blockReader{br: br, crc: crc64iso.New(), pos: ltx.HeaderSize, frames: crc64iso.New(), pgHash: ltx.NewHasher()}
	b, err := r.take(ltx.HeaderSize)
	if err != nil {
		return nil, err
	}
	if err := r.hdr.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("unmarshal header: %w", err)
	}
	r.crc.Write(b)
	if err := r.hdr.Validate(); err != nil {
		return nil, err
	}
	if !r.hdr.NoChecksum() {
		r.dbSum = ltx.ChecksumFlag
	}
	return r, nil
}

// take returns the next n bytes, valid until the next read, and consumes
// them. n is at most a frame: the buffer holds it.
func (r *blockReader) take(n int) ([]byte, error) {
	b, err := r.br.Peek(n)
	if err != nil {
		return nil, noEOF(err)
	}
	r.br.Discard(n)
	return b, nil
}

func (r *blockReader) header() ltx.Header { return r.hdr }

// finish: page has verified all that follows the pages before it
// returned io.EOF.
func (r *blockReader) finish() (ltx.Checksum, error) {
	if !r.ended {
		return 0, errors.New("the pages were not all read")
	}
	return r.dbSum, nil
}

// page decodes the next frame into page (one page), and says which page
// it is; io.EOF once the end marker, the index and the trailer have been
// read and verified.
func (r *blockReader) page(ph *ltx.PageHeader, page []byte) error {
	if r.ended {
		return io.EOF
	}
	b, err := r.take(ltx.PageHeaderSize + 4)
	if err != nil && len(b) == 0 {
		// The end marker is only a page header: take it alone.
		if b, err = r.take(ltx.PageHeaderSize); err != nil {
			return err
		}
	}
	if err := ph.UnmarshalBinary(b); err != nil {
		return fmt.Errorf("unmarshal: %w", err)
	}
	if ph.IsZero() {
		r.ended = true
		r.crc.Write(b[:ltx.PageHeaderSize])
		r.pos += ltx.PageHeaderSize
		// A size field read with it belongs to the index: give it back.
		if len(b) > ltx.PageHeaderSize {
			return r.index(b[ltx.PageHeaderSize:])
		}
		return r.index(nil)
	}
	if len(b) < ltx.PageHeaderSize+4 {
		return io.ErrUnexpectedEOF
	}
	if err := ph.Validate(); err != nil {
		return err
	}
	if ph.Flags != ltx.PageHeaderFlagSize {
		return fmt.Errorf("page %d: an LZ4 frame among LZ4 blocks (flags 0x%04x)", ph.Pgno, ph.Flags)
	}
	n := binary.BigEndian.Uint32(b[ltx.PageHeaderSize:])
	if int64(n) > maxFrame(r.hdr.PageSize)-ltx.PageHeaderSize-4 {
		return fmt.Errorf("page %d: a block of %d bytes for a page of %d", ph.Pgno, n, r.hdr.PageSize)
	}
	r.crc.Write(b)
	frame := int64(ltx.PageHeaderSize+4) + int64(n)
	block, err := r.take(int(n))
	if err != nil {
		return fmt.Errorf("read compressed data: %w", err)
	}
	if got, err := lz4.UncompressBlock(block, page); err != nil {
		return fmt.Errorf("decompress block: %w", err)
	} else if got != len(page) {
		return fmt.Errorf("page %d: decompressed to %d bytes, not a page of %d", ph.Pgno, got, len(page))
	}
	r.crc.Write(page)
	rec := r.rec[:]
	binary.BigEndian.PutUint32(rec, ph.Pgno)
	binary.BigEndian.PutUint64(rec[4:], uint64(r.pos))
	binary.BigEndian.PutUint64(rec[12:], uint64(frame))
	r.frames.Write(rec)
	r.pos += frame
	r.pages++
	if !r.hdr.NoChecksum() && ph.Pgno != ltx.LockPgno(r.hdr.PageSize) {
		r.dbSum = ltx.ChecksumFlag | (r.dbSum ^ ltx.ChecksumPageWithHasher(r.pgHash, ph.Pgno, page))
	}
	return nil
}

// index reads the page index and the trailer after the end marker (head:
// index bytes read with it already) and checks them; io.EOF when all
// holds.
func (r *blockReader) index(head []byte) error {
	br := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(head), r.br), 64<<10)
	// The index's bytes go into the file checksum in runs, not one by one.
	run := make([]byte, 0, 4<<10)
	read := func() (byte, error) {
		c, err := br.ReadByte()
		if err == nil {
			if run = append(run, c); len(run) == cap(run) {
				r.crc.Write(run)
				run = run[:0]
			}
		}
		return c, noEOF(err)
	}
	varint := func() (uint64, int, error) {
		var x uint64
		for i, s := 0, uint(0); i < binary.MaxVarintLen64; i, s = i+1, s+7 {
			c, err := read()
			if err != nil {
				return 0, i, err
			}
			if c < 0x80 {
				if i == binary.MaxVarintLen64-1 && c > 1 {
					return 0, i + 1, errors.New("varint overflows 64 bits")
				}
				return x | uint64(c)<<s, i + 1, nil
			}
			x |= uint64(c&0x7f) << s
		}
		return 0, 0, errors.New("varint too long")
	}
	seen := crc64iso.New()
	var consumed, entries int64
	prev, next := uint64(0), int64(ltx.HeaderSize)
	for {
		pgno, n, err := varint()
		consumed += int64(n)
		if err != nil {
			return fmt.Errorf("read page index: %w", err)
		}
		if pgno == 0 {
			break
		}
		off, n1, err := varint()
		consumed += int64(n1)
		if err != nil {
			return fmt.Errorf("read page index: %w", err)
		}
		size, n2, err := varint()
		consumed += int64(n2)
		if err != nil {
			return fmt.Errorf("read page index: %w", err)
		}
		switch {
		case pgno <= prev || pgno > uint64(r.hdr.Commit):
			return fmt.Errorf("page index: page %d after page %d, commit %d", pgno, prev, r.hdr.Commit)
		case size <= ltx.PageHeaderSize || size > uint64(maxFrame(r.hdr.PageSize)) || off > math.MaxInt64-size || int64(off) < next:
			return fmt.Errorf("page index: page %d has a frame of %d bytes at %d, where frames may start at %d", pgno, size, off, next)
		}
		var rec [20]byte
		binary.BigEndian.PutUint32(rec[:], uint32(pgno))
		binary.BigEndian.PutUint64(rec[4:], off)
		binary.BigEndian.PutUint64(rec[12:], size)
		seen.Write(rec[:])
		prev, next = pgno, int64(off+size)
		entries++
	}
	r.crc.Write(run)
	var tail [8 + ltx.TrailerSize]byte
	for i := range tail {
		c, err := br.ReadByte()
		if err != nil {
			return fmt.Errorf("read page index size and trailer: %w", noEOF(err))
		}
		tail[i] = c
	}
	if got := binary.BigEndian.Uint64(tail[:8]); got != uint64(consumed) {
		return fmt.Errorf("page index size field says %d bytes, the index has %d", got, consumed)
	}
	if entries != r.pages || seen.Sum64() != r.frames.Sum64() {
		return fmt.Errorf("the page index (%d entries) does not describe the %d frames decoded", entries, r.pages)
	}
	r.crc.Write(tail[:8+ltx.TrailerChecksumOffset])
	var t ltx.Trailer
	if err := t.UnmarshalBinary(tail[8:]); err != nil {
		return fmt.Errorf("unmarshal trailer: %w", err)
	}
	if _, err := br.ReadByte(); err == nil {
		return errors.New("unexpected data after trailer")
	} else if !errors.Is(err, io.EOF) {
		return fmt.Errorf("read after trailer: %w", err)
	}
	if sum := ltx.ChecksumFlag | ltx.Checksum(r.crc.Sum64()); sum != t.FileChecksum {
		return ltx.ErrChecksumMismatch
	}
	if !r.hdr.NoChecksum() && t.PostApplyChecksum != r.dbSum {
		return fmt.Errorf("post-apply checksum in trailer (%s) does not match calculated checksum (%s)", t.PostApplyChecksum, r.dbSum)
	}
	return io.EOF
}
