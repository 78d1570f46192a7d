package replica

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/internal/crc64iso"
)

// replaySegments publishes, after a restart, the segments in the log that
// continue the head, oldest first, and removes what cannot serve: segments
// at or below the head (folded before the crash), and everything from the
// first segment that is torn or does not continue the chain on (its LTX
// files are downloaded again). A log file is cut where its first such
// segment starts, so that a later restart does not stop there again and
// drop what was appended after it.
func (r *Replica) replaySegments() error {
	paths, err := listSegments(r.logDir)
	if err != nil {
		return err
	}
	discard := false
	for _, p := range paths {
		seq, isLog := logFileSeq(filepath.Base(p))
		if !isLog {
			if !discard && r.replayOwnFile(p) {
				continue
			}
			discard = true
		} else {
			r.log.seq = max(r.log.seq, seq)
			if !discard {
				keep, err := r.replayLogFile(p, seq, &discard)
				if err != nil {
					return err
				} else if keep {
					continue
				}
			}
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("replay log: %w", err)
		}
	}
	return nil
}

// replayOwnFile replays a segment file of its own (written before log
// files), and reports whether it continues the head.
func (r *Replica) replayOwnFile(p string) bool {
	seg, err := openSegment(p)
	switch {
	case err != nil:
		return false
	case seg.meta.MaxTXID <= r.head.TXID: // already folded before the crash
		seg.close()
		os.Remove(p)
		return true // nothing lost: go on
	case seg.meta.MinTXID > r.head.TXID+1 || seg.meta.PageSize != r.head.PageSize:
		seg.close()
		return false
	}
	r.publish(r.newVersion(seg))
	return true
}

// replayLogFile replays one log file and reports whether it is kept (it
// holds segments that continue the head); it sets *discard at the first
// segment that does not.
func (r *Replica) replayLogFile(p string, seq uint64, discard *bool) (bool, error) {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		*discard = true
		return false, nil
	}
	// Never appended to again (a new file takes what comes next); its
	// directory entry is synced again before a fold relies on it.
	lf := &logFile{log: &r.log, seq: seq, path: p, f: f}
	segs, end, rerr := readLogFile(lf)
	cut := end // where the first segment that cannot serve starts
	for _, seg := range segs {
		switch {
		case *discard:
		case seg.meta.MaxTXID <= r.head.TXID: // folded before the crash
			continue
		case seg.meta.MinTXID > r.head.TXID+1 || seg.meta.PageSize != r.head.PageSize:
			*discard = true
		default:
			lf.open++
			lf.live++
			r.publish(r.newVersion(seg))
			continue
		}
		cut = min(cut, seg.start)
	}
	if rerr != nil {
		*discard = true
	}
	if lf.live == 0 {
		f.Close()
		return false, nil
	}
	if fi, err := f.Stat(); err != nil || fi.Size() > cut {
		if err := f.Truncate(cut); err != nil {
			return false, fmt.Errorf("replay log: cut %s at %d: %w", filepath.Base(p), cut, err)
		}
	}
	r.log.files = append(r.log.files, lf)
	return true, nil
}

// readLogFile reads back the segments of a log file, up to the first that
// is incomplete or fails its CRC (err says why); end is where the ones
// before it end.
func readLogFile(lf *logFile) (segs []*segment, end int64, err error) {
	fi, err := lf.f.Stat()
	if err != nil {
		return nil, 0, err
	}
	size := fi.Size()
	for end < size {
		seg, err := readLogSegment(lf, end, size)
		if err != nil {
			return segs, end, fmt.Errorf("%s at %d: %w", filepath.Base(lf.path), end, err)
		}
		segs = append(segs, seg)
		end = seg.end
	}
	return segs, end, nil
}

// readLogSegment reads the segment at start of a log file of size bytes,
// checking its CRC and rebuilding its page index.
func readLogSegment(lf *logFile, start, size int64) (*segment, error) {
	hdr := make([]byte, segmentHeaderSize)
	if size-start < segmentHeaderSize {
		return nil, errors.New("torn header")
	}
	if _, err := lf.f.ReadAt(hdr, start); err != nil {
		return nil, err
	}
	if string(hdr[:8]) != segmentHeaderMagic {
		return nil, errors.New("bad segment header")
	}
	ps, n := binary.BigEndian.Uint32(hdr[8:]), int64(binary.BigEndian.Uint32(hdr[12:]))
	if !ltx.IsValidPageSize(ps) {
		return nil, fmt.Errorf("bad page size %d", ps)
	}
	recSize := int64(4 + ps)
	body := n*recSize + segmentTrailerSize
	if body > size-start-segmentHeaderSize {
		return nil, fmt.Errorf("torn: %d pages do not fit", n)
	}
	crc := crc64iso.New()
	pages := make(map[uint32]int64, n)
	off := start + segmentHeaderSize
	br := bufio.NewReaderSize(io.NewSectionReader(lf.f, off, body), 256<<10)
	rec := make([]byte, recSize)
	for i := range n {
		if _, err := io.ReadFull(br, rec); err != nil {
			return nil, err
		}
		crc.Write(rec)
		pages[binary.BigEndian.Uint32(rec)] = off + i*recSize + 4
	}
	tb := make([]byte, segmentTrailerSize)
	if _, err := io.ReadFull(br, tb); err != nil {
		return nil, err
	}
	meta, err := decodeTrailer(tb)
	if err != nil {
		return nil, err
	}
	crc.Write(tb[:segmentTrailerSize-8])
	if crc.Sum64() != binary.BigEndian.Uint64(tb[segmentTrailerSize-8:]) {
		return nil, errors.New("checksum mismatch (torn write?)")
	}
	if meta.PageSize != ps || int64(meta.PageN) != n {
		return nil, errors.New("header and trailer disagree")
	}
	return &segment{path: lf.path, f: lf.f, log: lf, start: start, end: off + body, meta: meta, pages: pages}, nil
}
