package replica

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/walrust/walrust/vfs/internal/crc64iso"

	"github.com/superfly/ltx"
)

// A segment holds the decoded pages of one applied LTX file (or of a run
// of them, merged) until a fold copies them into the base file. Segments
// are appended one after another to log files in the log directory
// (logfile.go); one segment's bytes:
//
//	header (segmentHeaderSize)       segmentHeaderMagic, page size, N
//	N × [pgno uint32][page bytes]    records, ascending pgno
//	trailer (segmentTrailerSize)     what the version is, and a CRC-64 of
//	                                 the records and the trailer before it
//
// A segment counts only once all of it is there and its CRC matches, so
// one torn by a crash is recognised when the log is read back after a
// restart, and dropped with everything after it (its LTX file is simply
// downloaded again).
//
// Replicas written before log files kept one segment per file, named by its
// TXIDs, without the header; such files are still read (openSegment).
type segment struct {
	path  string   // the file it is in
	f     *os.File // shared with the log file's other segments
	log   *logFile // nil for a file of its own (a staged snapshot, an old segment file)
	start int64    // its bytes in the log file: [start, end)
	end   int64
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
	segmentHeaderMagic = "WALRLOG1"
	segmentHeaderSize  = 8 + 4 + 4
	segmentExt         = ".pages"
)

func segmentName(minTXID, maxTXID ltx.TXID) string {
	return fmt.Sprintf("%016x-%016x%s", uint64(minTXID), uint64(maxTXID), segmentExt)
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

// openSegment reads back a segment file of its own (as replicas wrote them
// before log files) after a restart, checking its CRC and rebuilding its
// page index.
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
	switch {
	case s.full:
		return int64(s.meta.Commit) * int64(s.meta.PageSize)
	case s.log != nil:
		return s.end - s.start
	}
	return int64(s.meta.PageN)*int64(4+s.meta.PageSize) + segmentTrailerSize
}

// close gives up the segment's descriptor: once no segment of a log file
// has it open, the file's is closed. Nothing reads the segment afterwards.
func (s *segment) close() {
	if s.f == nil {
		return
	}
	if s.log != nil {
		s.log.release()
	} else {
		s.f.Close()
	}
	s.f = nil
}

// remove deletes the segment: a file of its own at once; a log file once
// none of its segments is left. A descriptor stays open for anyone still
// reading through it until close.
func (s *segment) remove() error {
	if s.log != nil {
		return s.log.drop()
	}
	if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove segment: %w", err)
	}
	return nil
}
