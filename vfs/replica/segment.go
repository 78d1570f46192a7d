package replica

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/walrust/walrust/vfs/internal/crc64iso"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/internal/durable"
)

// A segment holds the decoded pages of one applied LTX file in the log
// directory, until a fold copies them into the base file. Layout:
//
//	N × [pgno uint32][page bytes]   records, ascending pgno
//	trailer (segmentTrailerSize)     what the version is, and a CRC-64 of
//	                                 every byte before the CRC
//
// A segment is renamed to its final name only once it is complete, and its
// CRC is checked when it is read back after a restart, so a torn segment is
// recognised and discarded (its LTX file is simply downloaded again).
type segment struct {
	path  string
	f     *os.File
	meta  segmentMeta
	pages map[uint32]int64 // pgno → file offset of the page bytes

	// full marks a staged snapshot: a plain database file holding every
	// page at (pgno-1)*PageSize, which nothing older shows through.
	full bool
}

// lookup returns where page pgno is in the segment.
func (s *segment) lookup(pgno uint32) (int64, bool) {
	if s.full {
		return int64(pgno-1) * int64(s.meta.PageSize), true
	}
	off, ok := s.pages[pgno]
	return off, ok
}

// segmentMeta describes the database version a segment produces.
type segmentMeta struct {
	MinTXID, MaxTXID ltx.TXID
	PageSize         uint32
	Commit           uint32
	Timestamp        int64        // ms since the epoch, from the LTX header
	Checksum         ltx.Checksum // running checksum after this segment
	Page1Checksum    ltx.Checksum // checksum of the primary's page 1 after it
	PageN            uint32
}

const (
	segmentMagic       = "WALRSEG1"
	segmentTrailerSize = 8 + 8 + 8 + 4 + 4 + 8 + 8 + 8 + 4 + 8
	segmentExt         = ".pages"
)

func segmentName(minTXID, maxTXID ltx.TXID) string {
	return fmt.Sprintf("%016x-%016x%s", uint64(minTXID), uint64(maxTXID), segmentExt)
}

// segmentWriter streams one segment into a temporary file.
type segmentWriter struct {
	dir      string
	f        *os.File
	bw       *bufio.Writer
	crc      hash.Hash64
	off      int64
	pageSize uint32
	pages    map[uint32]int64
	prevPgno uint32
}

func createSegment(dir string, pageSize uint32) (*segmentWriter, error) {
	f, err := durable.CreateTemp(dir, ".segment-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("create segment: %w", err)
	}
	return &segmentWriter{
		dir: dir, f: f, bw: bufio.NewWriterSize(f, 256<<10), crc: crc64iso.New(),
		pageSize: pageSize, pages: make(map[uint32]int64),
	}, nil
}

func (w *segmentWriter) write(b []byte) error {
	if _, err := w.bw.Write(b); err != nil {
		return fmt.Errorf("write segment: %w", err)
	}
	w.crc.Write(b)
	w.off += int64(len(b))
	return nil
}

func (w *segmentWriter) writePage(pgno uint32, data []byte) error {
	if pgno <= w.prevPgno {
		return fmt.Errorf("segment: page %d after page %d", pgno, w.prevPgno)
	}
	w.prevPgno = pgno
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], pgno)
	if err := w.write(hdr[:]); err != nil {
		return err
	}
	w.pages[pgno] = w.off
	return w.write(data)
}

// finish writes the trailer and renames the segment to its final name. It
// does not sync: a fold syncs every segment it reads before it touches the
// base file, which is the only point where durability matters.
func (w *segmentWriter) finish(meta segmentMeta) (*segment, error) {
	meta.PageN = uint32(len(w.pages))
	if err := w.write(encodeTrailer(meta)); err != nil {
		w.abort()
		return nil, err
	}
	var sum [8]byte
	binary.BigEndian.PutUint64(sum[:], w.crc.Sum64())
	if _, err := w.bw.Write(sum[:]); err != nil {
		w.abort()
		return nil, fmt.Errorf("write segment: %w", err)
	}
	if err := w.bw.Flush(); err != nil {
		w.abort()
		return nil, fmt.Errorf("write segment: %w", err)
	}
	path := filepath.Join(w.dir, segmentName(meta.MinTXID, meta.MaxTXID))
	if err := os.Rename(w.f.Name(), path); err != nil {
		w.abort()
		return nil, fmt.Errorf("segment: %w", err)
	}
	return &segment{path: path, f: w.f, meta: meta, pages: w.pages}, nil
}

func (w *segmentWriter) abort() {
	w.f.Close()
	os.Remove(w.f.Name())
}

func encodeTrailer(m segmentMeta) []byte {
	b := make([]byte, 0, segmentTrailerSize-8)
	b = append(b, segmentMagic...)
	b = binary.BigEndian.AppendUint64(b, uint64(m.MinTXID))
	b = binary.BigEndian.AppendUint64(b, uint64(m.MaxTXID))
	b = binary.BigEndian.AppendUint32(b, m.PageSize)
	b = binary.BigEndian.AppendUint32(b, m.Commit)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Timestamp))
	b = binary.BigEndian.AppendUint64(b, uint64(m.Checksum))
	b = binary.BigEndian.AppendUint64(b, uint64(m.Page1Checksum))
	b = binary.BigEndian.AppendUint32(b, m.PageN)
	return b
}

func decodeTrailer(b []byte) (m segmentMeta, err error) {
	if len(b) < segmentTrailerSize-8 || string(b[:8]) != segmentMagic {
		return m, errors.New("bad segment trailer")
	}
	b = b[8:]
	m.MinTXID = ltx.TXID(binary.BigEndian.Uint64(b[0:]))
	m.MaxTXID = ltx.TXID(binary.BigEndian.Uint64(b[8:]))
	m.PageSize = binary.BigEndian.Uint32(b[16:])
	m.Commit = binary.BigEndian.Uint32(b[20:])
	m.Timestamp = int64(binary.BigEndian.Uint64(b[24:]))
	m.Checksum = ltx.Checksum(binary.BigEndian.Uint64(b[32:]))
	m.Page1Checksum = ltx.Checksum(binary.BigEndian.Uint64(b[40:]))
	m.PageN = binary.BigEndian.Uint32(b[48:])
	return m, nil
}

// openSegment reads a segment back after a restart, checking its CRC and
// rebuilding its page index.
func openSegment(path string) (*segment, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open segment: %w", err)
	}
	seg, err := readSegment(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("segment %s: %w", filepath.Base(path), err)
	}
	seg.path = path
	return seg, nil
}

func readSegment(f *os.File) (*segment, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	if size < segmentTrailerSize {
		return nil, errors.New("too short")
	}
	tb := make([]byte, segmentTrailerSize)
	if _, err := f.ReadAt(tb, size-segmentTrailerSize); err != nil {
		return nil, err
	}
	meta, err := decodeTrailer(tb)
	if err != nil {
		return nil, err
	}
	if !ltx.IsValidPageSize(meta.PageSize) {
		return nil, fmt.Errorf("bad page size %d", meta.PageSize)
	}
	recSize := int64(4 + meta.PageSize)
	if size != int64(meta.PageN)*recSize+segmentTrailerSize {
		return nil, fmt.Errorf("size %d does not match %d pages", size, meta.PageN)
	}
	crc := crc64iso.New()
	pages := make(map[uint32]int64, meta.PageN)
	br := bufio.NewReaderSize(io.NewSectionReader(f, 0, size-8), 256<<10)
	rec := make([]byte, recSize)
	for i := int64(0); i < int64(meta.PageN); i++ {
		if _, err := io.ReadFull(br, rec); err != nil {
			return nil, err
		}
		crc.Write(rec)
		pages[binary.BigEndian.Uint32(rec)] = i*recSize + 4
	}
	crc.Write(tb[:segmentTrailerSize-8])
	if crc.Sum64() != binary.BigEndian.Uint64(tb[segmentTrailerSize-8:]) {
		return nil, errors.New("checksum mismatch (torn write?)")
	}
	return &segment{f: f, meta: meta, pages: pages}, nil
}

// listSegments returns the complete segment files in dir, oldest first by
// name, and removes temporary files left by a crash.
func listSegments(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read log dir: %w", err)
	}
	var paths []string
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".tmp"):
			os.Remove(filepath.Join(dir, name))
		case strings.HasSuffix(name, segmentExt):
			paths = append(paths, filepath.Join(dir, name))
		}
	}
	return paths, nil // ReadDir sorts by name, and names sort by TXID
}

// size is how many bytes the segment's file holds.
func (s *segment) size() int64 {
	if s.full {
		return int64(s.meta.Commit) * int64(s.meta.PageSize)
	}
	return int64(s.meta.PageN)*int64(4+s.meta.PageSize) + segmentTrailerSize
}

func (s *segment) close() {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
}

// remove deletes the segment's file; the descriptor stays open for anyone
// still reading through it until close.
func (s *segment) remove() error {
	if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove segment: %w", err)
	}
	return nil
}
