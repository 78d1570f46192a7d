package replica

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/walrust/walrust/vfs/internal/crc64iso"
	"github.com/walrust/walrust/vfs/internal/durable"
)

// Segments are appended to log files, "log-<seq>.pages", seq counting up,
// rather than each written to a file of its own: creating a file costs
// more than writing a small segment (0.5 ms of kernel time on a VM's ext4,
// against 25 µs to write 40 KB), a fold then syncs a few files instead of
// one per applied LTX file, and a catch-up through thousands of small
// files creates a handful. A log file is removed once none of its
// segments is left; the one being appended to is replaced past
// logFileMax, so that a segment a reader holds keeps at most that much
// disk beside it.
var logFileMax int64 = 32 << 20 // a variable: the tests lower it

const logFilePrefix = "log-"

// segmentLog is the replica's set of log files. Only the follower appends
// and removes; Close may run on another goroutine, so the counts of each
// file are under its own lock.
type segmentLog struct {
	dir    string
	seq    uint64     // of the newest log file
	active *logFile   // segments are appended to it; nil until the next append
	files  []*logFile // every log file not removed, oldest first
}

// logFile is one log file and its segments.
type logFile struct {
	log  *segmentLog
	seq  uint64
	path string
	f    *os.File

	mu     sync.Mutex
	size   int64 // where its last complete segment ends: where the next one goes
	open   int   // segments not closed
	live   int   // segments not removed
	active bool  // the log's file to append to
	named  bool  // its directory entry is known durable
	gone   bool  // removed from the directory
}

func logFileName(seq uint64) string { return fmt.Sprintf("%s%016x%s", logFilePrefix, seq, segmentExt) }

// logFileSeq returns the sequence number of a log file's name.
func logFileSeq(name string) (uint64, bool) {
	hex, ok := strings.CutPrefix(name, logFilePrefix)
	if hex, ok = strings.CutSuffix(hex, segmentExt); !ok || len(hex) != 16 {
		return 0, false
	}
	seq, err := strconv.ParseUint(hex, 16, 64)
	return seq, err == nil
}

// release is a segment's close.
func (lf *logFile) release() {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	lf.open--
	if lf.open == 0 && !lf.active {
		lf.f.Close()
	}
}

// drop is a segment's remove. A file without segments is removed, the
// active one too (the next append starts another), so that a folded
// replica leaves an empty log directory. Every segment in it is at or below
// the root by then, which a restart would skip anyway.
func (lf *logFile) drop() error {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	lf.live--
	if lf.live > 0 || lf.gone {
		return nil
	}
	if lf.active {
		lf.active = false
		lf.log.active = nil
		if lf.open == 0 {
			lf.f.Close()
		}
	}
	return lf.removeLocked()
}

func (lf *logFile) removeLocked() error {
	lf.gone = true
	l := lf.log
	for i, x := range l.files {
		if x == lf {
			l.files = append(l.files[:i], l.files[i+1:]...)
			break
		}
	}
	if err := os.Remove(lf.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove log file: %w", err)
	}
	return nil
}

// appendTo returns the file the next segment goes to, starting a new one
// when there is none or the active one is full.
func (l *segmentLog) appendTo() (*logFile, error) {
	if lf := l.active; lf != nil && lf.size < logFileMax {
		return lf, nil
	}
	l.retire()
	if l.dir == "" { // never the working directory
		return nil, errors.New("create log file: the replica has no log directory")
	}
	for range 100 {
		l.seq++
		path := filepath.Join(l.dir, logFileName(l.seq))
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, durable.Mode)
		if errors.Is(err, fs.ErrExist) {
			continue // left by another process that followed this file
		} else if err != nil {
			return nil, fmt.Errorf("create log file: %w", err)
		}
		lf := &logFile{log: l, seq: l.seq, path: path, f: f, active: true}
		l.active = lf
		l.files = append(l.files, lf)
		return lf, nil
	}
	return nil, fmt.Errorf("create log file: no free name after %s", logFileName(l.seq))
}

// retire stops appending to the active file: it closes once its segments
// are closed, and goes once they are removed.
func (l *segmentLog) retire() {
	lf := l.active
	if lf == nil {
		return
	}
	l.active = nil
	lf.mu.Lock()
	defer lf.mu.Unlock()
	lf.active = false
	if lf.live == 0 && !lf.gone {
		lf.removeLocked()
	}
	if lf.open == 0 {
		lf.f.Close()
	}
}

// forget is for when every file of the log has been removed from the
// directory (a re-bootstrap): readers of the old chain keep reading
// through their descriptors, and the next append starts a new file.
func (l *segmentLog) forget() {
	l.retire()
	for _, lf := range l.files {
		lf.mu.Lock()
		lf.gone = true
		lf.mu.Unlock()
	}
	l.files = nil
}

// sync makes every log file up to the newest that holds one of segs durable,
// its directory entry too. Older files are synced as well: a segment is
// never folded while one before it could still be lost to a crash (a
// restart drops everything after a torn segment).
func (l *segmentLog) sync(segs []*segment) error {
	newest := uint64(0)
	for _, s := range segs {
		if s.log != nil {
			newest = max(newest, s.log.seq)
		}
	}
	dir := false
	for _, lf := range l.files {
		if lf.seq > newest {
			break
		}
		if err := lf.f.Sync(); err != nil {
			return fmt.Errorf("sync log file: %w", err)
		}
		dir = dir || !lf.named
	}
	if dir {
		if err := durable.SyncDir(l.dir); err != nil {
			return fmt.Errorf("sync log directory: %w", err)
		}
		for _, lf := range l.files {
			lf.named = lf.named || lf.seq <= newest
		}
	}
	return nil
}

// segmentWriter streams one segment to the end of a log file.
type segmentWriter struct {
	lf       *logFile
	start    int64
	bw       *bufio.Writer
	crc      hash.Hash64
	off      int64 // file offset of the next byte
	pageSize uint32
	pages    map[uint32]int64
	prevPgno uint32
}

func (r *Replica) createSegment(pageSize uint32) (*segmentWriter, error) {
	lf, err := r.log.appendTo()
	if err != nil {
		return nil, err
	}
	w := &segmentWriter{
		lf: lf, start: lf.size, off: lf.size + segmentHeaderSize, crc: crc64iso.New(),
		pageSize: pageSize, pages: make(map[uint32]int64),
	}
	w.bw = bufio.NewWriterSize(io.NewOffsetWriter(lf.f, w.off), 256<<10)
	return w, nil
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

// finish writes the trailer, then the header, and adds the segment to its
// log file. It does not sync: a fold syncs the log files it reads before it
// touches the base file, which is the only point where durability matters;
// until then, a segment a crash tears is recognised by its CRC.
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
	end := w.off + 8
	hdr := make([]byte, 0, segmentHeaderSize)
	hdr = append(hdr, segmentHeaderMagic...)
	hdr = binary.BigEndian.AppendUint32(hdr, meta.PageSize)
	hdr = binary.BigEndian.AppendUint32(hdr, meta.PageN)
	if _, err := w.lf.f.WriteAt(hdr, w.start); err != nil {
		w.abort()
		return nil, fmt.Errorf("write segment: %w", err)
	}
	lf := w.lf
	lf.mu.Lock()
	lf.size = end
	lf.open++
	lf.live++
	lf.mu.Unlock()
	return &segment{path: lf.path, f: lf.f, log: lf, start: w.start, end: end, meta: meta, pages: w.pages}, nil
}

// abort cuts what the segment wrote off the file again (if that fails, the
// next segment overwrites it, and a restart stops at whatever is left). A
// file that holds nothing else goes, as if never made.
func (w *segmentWriter) abort() {
	lf := w.lf
	lf.f.Truncate(lf.size)
	lf.mu.Lock()
	empty := lf.live == 0 && lf.active
	lf.mu.Unlock()
	if empty {
		lf.log.retire()
	}
}
