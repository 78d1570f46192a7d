package publish

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/superfly/ltx"
)

// ErrPageSizeChanged is returned by WriteDelta when the two images have
// different page sizes; only a snapshot can describe such a change.
var ErrPageSizeChanged = errors.New("page size changed: a snapshot is needed")

// spillThreshold is the number of page index entries an encoder keeps in
// memory before it moves them to EncodeOptions.SpillDir (24 bytes each).
const spillThreshold = 1 << 16

// EncodeOptions tune WriteSnapshot and WriteDelta. A nil *EncodeOptions is
// the same as the zero value.
type EncodeOptions struct {
	// NoChecksum writes the file the way Litestream v0.5 does: the header
	// flag ltx.HeaderFlagNoChecksum is set and the pre- and post-apply
	// database checksums are zero. The file checksum is still written.
	NoChecksum bool

	// SpillDir is a directory where the encoder may keep its page index in
	// a temporary file once the file holds more than 65536 pages. Without
	// it the index stays in memory (24 bytes per page written).
	SpillDir string

	// Progress, if set, is called after each chunk of pages (about 1 MiB)
	// with the bytes of the image(s) scanned so far and the total to scan.
	Progress func(done, total int64)
}

// FileStats describes an LTX file written by WriteSnapshot or WriteDelta.
type FileStats struct {
	Header ltx.Header
	// PostApplyChecksum is the database checksum after the file is
	// applied. It is computed even with NoChecksum (for a delta it is then
	// only meaningful if the caller passed a real pre-apply checksum).
	PostApplyChecksum ltx.Checksum
	Pages             int   // page frames in the file
	Size              int64 // bytes written to w
}

// Name is the file's name in a store: MinTXID and MaxTXID from the header.
func (s FileStats) Name() string { return ltx.FormatFilename(s.Header.MinTXID, s.Header.MaxTXID) }

// WriteSnapshot writes img as a snapshot LTX file to w: MinTXID 1, MaxTXID
// txid, every page from 1 to img.Commit except the lock page, Timestamp ts
// (milliseconds; the zero time means now) and the image's checksum as the
// post-apply checksum. Memory does not depend on the image's size as long
// as opts.SpillDir is set.
func WriteSnapshot(w io.Writer, img Image, txid ltx.TXID, ts time.Time, opts *EncodeOptions) (_ FileStats, err error) {
	if opts == nil {
		opts = &EncodeOptions{}
	}
	if img.Commit == 0 {
		return FileStats{}, errors.New("write snapshot: the image is empty")
	}
	if txid < 1 {
		return FileStats{}, errors.New("write snapshot: TXID must be at least 1")
	}
	hdr := newHeader(img, 1, txid, ts, opts.NoChecksum)
	enc, err := newFileEncoder(w, hdr, opts)
	if err != nil {
		return FileStats{}, fmt.Errorf("write snapshot %s: %w", ltx.FormatFilename(1, txid), err)
	}
	defer func() { err = errors.Join(err, enc.cleanup()) }()

	total := img.Size()
	sum := ltx.ChecksumFlag
	if err := eachPage(img, func(pgno uint32, data []byte) error {
		sum ^= ltx.ChecksumPageWithHasher(enc.hasher, pgno, data)
		if err := enc.page(pgno, data); err != nil {
			return err
		}
		enc.progress(pgno, img.Commit, img.PageSize, total)
		return nil
	}); err != nil {
		return FileStats{}, fmt.Errorf("write snapshot: %w", err)
	}
	return enc.close(ltx.ChecksumFlag | sum)
}

// WriteDelta writes to w an LTX file that turns prev, whose position is pre
// (its TXID and database checksum), into cur: MinTXID pre.TXID+1, MaxTXID
// txid (a file may stand for several transactions, as compactions do),
// Commit cur.Commit, Timestamp ts. It holds the pages of cur that differ
// from prev and every page beyond prev's size; when cur is smaller, pages
// past cur.Commit are simply gone. Both images are compared page by page in
// ascending order, so memory stays flat (given opts.SpillDir). The file may
// hold no page at all when nothing differs; the caller decides whether
// such a file is worth keeping. Images of different page sizes return
// ErrPageSizeChanged.
func WriteDelta(w io.Writer, prev, cur Image, pre ltx.Pos, txid ltx.TXID, ts time.Time, opts *EncodeOptions) (_ FileStats, err error) {
	if opts == nil {
		opts = &EncodeOptions{}
	}
	name := ltx.FormatFilename(pre.TXID+1, txid)
	switch {
	case prev.PageSize != cur.PageSize:
		return FileStats{}, fmt.Errorf("write delta %s: %d to %d bytes: %w", name, prev.PageSize, cur.PageSize, ErrPageSizeChanged)
	case pre.TXID == 0:
		return FileStats{}, fmt.Errorf("write delta %s: a delta needs a previous TXID; write a snapshot", name)
	case txid <= pre.TXID:
		return FileStats{}, fmt.Errorf("write delta %s: TXID %d is not after the previous TXID %d", name, txid, pre.TXID)
	case cur.Commit == 0:
		return FileStats{}, fmt.Errorf("write delta %s: the new image is empty", name)
	case !opts.NoChecksum && pre.PostApplyChecksum&ltx.ChecksumFlag == 0:
		return FileStats{}, fmt.Errorf("write delta %s: pre-apply checksum %s is not a database checksum", name, pre.PostApplyChecksum)
	}
	hdr := newHeader(cur, pre.TXID+1, txid, ts, opts.NoChecksum)
	if !opts.NoChecksum {
		hdr.PreApplyChecksum = pre.PostApplyChecksum
	}
	enc, err := newFileEncoder(w, hdr, opts)
	if err != nil {
		return FileStats{}, fmt.Errorf("write delta %s: %w", name, err)
	}
	defer func() { err = errors.Join(err, enc.cleanup()) }()

	oldPages, newPages := newPageReader(prev), newPageReader(cur)
	lock := ltx.LockPgno(cur.PageSize)
	last := max(prev.Commit, cur.Commit)
	total := int64(last) * int64(cur.PageSize)
	sum := pre.PostApplyChecksum
	for pgno := uint32(1); pgno <= last; pgno++ {
		if pgno == lock {
			continue
		}
		var oldData, newData []byte
		if pgno <= prev.Commit {
			if oldData, err = oldPages.page(pgno); err != nil {
				return FileStats{}, fmt.Errorf("write delta %s: previous image: %w", name, err)
			}
		}
		if pgno <= cur.Commit {
			if newData, err = newPages.page(pgno); err != nil {
				return FileStats{}, fmt.Errorf("write delta %s: new image: %w", name, err)
			}
		}
		if oldData != nil && newData != nil && bytes.Equal(oldData, newData) {
			enc.progress(pgno, last, cur.PageSize, total)
			continue
		}
		if oldData != nil {
			sum ^= ltx.ChecksumPageWithHasher(enc.hasher, pgno, oldData)
		}
		if newData != nil {
			sum ^= ltx.ChecksumPageWithHasher(enc.hasher, pgno, newData)
			if err := enc.page(pgno, newData); err != nil {
				return FileStats{}, fmt.Errorf("write delta %s: %w", name, err)
			}
		}
		enc.progress(pgno, last, cur.PageSize, total)
	}
	return enc.close(ltx.ChecksumFlag | sum)
}

func newHeader(img Image, minTXID, maxTXID ltx.TXID, ts time.Time, noChecksum bool) ltx.Header {
	if ts.IsZero() {
		ts = time.Now()
	}
	hdr := ltx.Header{
		Version:   ltx.Version,
		PageSize:  img.PageSize,
		Commit:    img.Commit,
		MinTXID:   minTXID,
		MaxTXID:   maxTXID,
		Timestamp: ts.UnixMilli(),
	}
	if noChecksum {
		hdr.Flags |= ltx.HeaderFlagNoChecksum
	}
	return hdr
}

// fileEncoder is the part WriteSnapshot and WriteDelta share: an ltx.Encoder
// behind a buffer and a byte counter, and progress reporting.
type fileEncoder struct {
	enc      *ltx.Encoder
	bw       *bufio.Writer
	cw       *countingWriter
	hdr      ltx.Header
	opts     *EncodeOptions
	hasher   hash.Hash64
	pages    int
	lastNote uint32 // page number of the last progress report
}

func newFileEncoder(w io.Writer, hdr ltx.Header, opts *EncodeOptions) (*fileEncoder, error) {
	cw := &countingWriter{w: w}
	bw := bufio.NewWriterSize(cw, 256<<10)
	enc, err := ltx.NewEncoder(bw)
	if err != nil {
		return nil, err
	}
	if opts.SpillDir != "" {
		enc.SetSpillDir(opts.SpillDir)
		enc.SetSpillThreshold(spillThreshold)
	}
	if err := enc.EncodeHeader(hdr); err != nil {
		return nil, fmt.Errorf("encode header: %w", err)
	}
	return &fileEncoder{enc: enc, bw: bw, cw: cw, hdr: hdr, opts: opts, hasher: ltx.NewHasher()}, nil
}

func (e *fileEncoder) page(pgno uint32, data []byte) error {
	if err := e.enc.EncodePage(ltx.PageHeader{Pgno: pgno}, data); err != nil {
		return fmt.Errorf("encode page %d: %w", pgno, err)
	}
	e.pages++
	return nil
}

// progress reports once per chunk of pages and at the last page.
func (e *fileEncoder) progress(pgno, last, pageSize uint32, total int64) {
	if e.opts.Progress == nil {
		return
	}
	per := max(uint32(readChunk)/pageSize, 1)
	if pgno != last && pgno-e.lastNote < per {
		return
	}
	e.lastNote = pgno
	e.opts.Progress(int64(pgno)*int64(pageSize), total)
}

// close finishes the file with the post-apply checksum sum (left out under
// NoChecksum) and flushes it to the writer.
func (e *fileEncoder) close(sum ltx.Checksum) (FileStats, error) {
	if !e.hdr.NoChecksum() {
		e.enc.SetPostApplyChecksum(sum)
	}
	if err := e.enc.Close(); err != nil {
		return FileStats{}, fmt.Errorf("finish %s: %w", ltx.FormatFilename(e.hdr.MinTXID, e.hdr.MaxTXID), err)
	}
	if err := e.bw.Flush(); err != nil {
		return FileStats{}, fmt.Errorf("write %s: %w", ltx.FormatFilename(e.hdr.MinTXID, e.hdr.MaxTXID), err)
	}
	return FileStats{Header: e.hdr, PostApplyChecksum: sum, Pages: e.pages, Size: e.cw.n}, nil
}

// cleanup removes the encoder's spill file, if any; after a successful
// close there is nothing left to do.
func (e *fileEncoder) cleanup() error {
	if err := e.enc.Cleanup(); err != nil {
		return fmt.Errorf("remove page index spill file: %w", err)
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
