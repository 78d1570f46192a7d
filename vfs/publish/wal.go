package publish

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/superfly/ltx"
)

// SQLite's write-ahead log, as https://www.sqlite.org/fileformat2.html#walformat
// describes it: a 32-byte header, then frames of a 24-byte header and one
// page. A frame is valid when its salts equal the header's and its
// checksum, which runs over every frame before it, matches; a frame whose
// "commit" field is non-zero ends a transaction and gives the database's
// size in pages after it. Only frames up to the last valid commit frame
// hold committed data: what follows is a transaction being written, or
// stale frames of an earlier generation of the log.
const (
	walHeaderSize      = 32
	walFrameHeaderSize = 24
	walMagicLE         = 0x377f0682 // checksums over little-endian words
	walMagicBE         = 0x377f0683 // checksums over big-endian words
	walVersion         = 3007000
)

// errNoWAL reports a -wal file that is missing or shorter than its header:
// SQLite has not written a frame since it created or truncated it.
var errNoWAL = errors.New("no write-ahead log header")

// walHeader is the header of a -wal file.
type walHeader struct {
	BigEndian    bool // the checksums' byte order
	PageSize     uint32
	Seq          uint32 // checkpoint sequence
	Salt1, Salt2 uint32
	Sum          walSum // checksum of the header's first 24 bytes
}

// walSum is a WAL checksum, the pair (s0, s1) of the format.
type walSum [2]uint32

// readWALHeader reads and checks the header of a -wal file.
func readWALHeader(f io.ReaderAt) (walHeader, error) {
	var b [walHeaderSize]byte
	if n, err := f.ReadAt(b[:], 0); n < len(b) {
		if err == nil || err == io.EOF {
			return walHeader{}, errNoWAL
		}
		return walHeader{}, fmt.Errorf("read wal header: %w", err)
	}
	magic := binary.BigEndian.Uint32(b[0:])
	if magic != walMagicLE && magic != walMagicBE {
		return walHeader{}, fmt.Errorf("wal header: bad magic %#x", magic)
	}
	if v := binary.BigEndian.Uint32(b[4:]); v != walVersion {
		return walHeader{}, fmt.Errorf("wal header: unknown version %d", v)
	}
	h := walHeader{
		BigEndian: magic == walMagicBE,
		PageSize:  binary.BigEndian.Uint32(b[8:]),
		Seq:       binary.BigEndian.Uint32(b[12:]),
		Salt1:     binary.BigEndian.Uint32(b[16:]),
		Salt2:     binary.BigEndian.Uint32(b[20:]),
		Sum:       walSum{binary.BigEndian.Uint32(b[24:]), binary.BigEndian.Uint32(b[28:])},
	}
	if h.PageSize == 1 {
		h.PageSize = 65536
	}
	if !ltx.IsValidPageSize(h.PageSize) {
		return walHeader{}, fmt.Errorf("wal header: bad page size %d", h.PageSize)
	}
	if walChecksum(h.BigEndian, walSum{}, b[:24]) != h.Sum {
		return walHeader{}, errors.New("wal header: checksum mismatch")
	}
	return h, nil
}

// sameGeneration says whether two headers describe the same log: SQLite
// gives every restart of the log new salts.
func (h walHeader) sameGeneration(o walHeader) bool {
	return h.Salt1 == o.Salt1 && h.Salt2 == o.Salt2 && h.PageSize == o.PageSize && h.BigEndian == o.BigEndian
}

// frameOffset is where frame n (1-based) starts.
func (h walHeader) frameOffset(n uint32) int64 {
	return walHeaderSize + int64(n-1)*int64(walFrameHeaderSize+h.PageSize)
}

// walChecksum extends sum over b (a multiple of 8 bytes) the way SQLite
// does: s0 += x0 + s1; s1 += x1 + s0 over pairs of 32-bit words read in
// the log's byte order.
func walChecksum(bigEndian bool, sum walSum, b []byte) walSum {
	s0, s1 := sum[0], sum[1]
	if bigEndian {
		for i := 0; i+8 <= len(b); i += 8 {
			s0 += binary.BigEndian.Uint32(b[i:]) + s1
			s1 += binary.BigEndian.Uint32(b[i+4:]) + s0
		}
	} else {
		for i := 0; i+8 <= len(b); i += 8 {
			s0 += binary.LittleEndian.Uint32(b[i:]) + s1
			s1 += binary.LittleEndian.Uint32(b[i+4:]) + s0
		}
	}
	return walSum{s0, s1}
}

// walScan is what a scan of a log found after a starting frame: the
// committed transactions, as the newest frame of each page.
type walScan struct {
	Frames uint32 // the last valid commit frame (the start when none)
	Sum    walSum // the running checksum at Frames
	Commit uint32 // database size in pages after Frames (0: no commit found)
	// Pages maps each page written by a committed transaction to the
	// offset in the log of its newest page image (past the frame header).
	Pages map[uint32]int64
}

// walScanChunk is how many bytes a scan reads at once.
const walScanChunk = 1 << 20

// scanWAL reads the frames of the log f (whose header is h) after frame
// from, whose running checksum is sum (h.Sum for from 0), up to the last
// valid commit frame. A frame that is short, carries other salts or fails
// its checksum ends the scan: nothing after it is committed in this
// generation of the log.
func scanWAL(f io.ReaderAt, h walHeader, from uint32, sum walSum) (walScan, error) {
	res := walScan{Frames: from, Sum: sum, Pages: map[uint32]int64{}}
	frameSize := int64(walFrameHeaderSize + h.PageSize)
	perChunk := max(walScanChunk/frameSize, 1)
	buf := make([]byte, perChunk*frameSize)
	pending := map[uint32]int64{} // pages of the transaction being read
	n := from
	for {
		off := h.frameOffset(n + 1)
		got, err := f.ReadAt(buf, off)
		if err != nil && err != io.EOF {
			return walScan{}, fmt.Errorf("read wal at %d: %w", off, err)
		}
		frames := int64(got) / frameSize
		for i := range frames {
			fr := buf[i*frameSize : (i+1)*frameSize]
			if binary.BigEndian.Uint32(fr[8:]) != h.Salt1 || binary.BigEndian.Uint32(fr[12:]) != h.Salt2 {
				return res, nil
			}
			sum = walChecksum(h.BigEndian, sum, fr[:8])
			sum = walChecksum(h.BigEndian, sum, fr[walFrameHeaderSize:])
			if sum != (walSum{binary.BigEndian.Uint32(fr[16:]), binary.BigEndian.Uint32(fr[20:])}) {
				return res, nil
			}
			n++
			pgno := binary.BigEndian.Uint32(fr[0:])
			if pgno == 0 {
				return res, nil
			}
			pending[pgno] = off + i*frameSize + walFrameHeaderSize
			if commit := binary.BigEndian.Uint32(fr[4:]); commit != 0 {
				for p, o := range pending {
					res.Pages[p] = o
				}
				clear(pending)
				res.Frames, res.Sum, res.Commit = n, sum, commit
			}
		}
		if frames < perChunk {
			return res, nil
		}
	}
}

// frameMatches says whether frame n of the log f (header h) is still the
// frame a scan ended at: same salts and running checksum sum. A log
// restarted and rewritten since then fails this.
func frameMatches(f io.ReaderAt, h walHeader, n uint32, sum walSum) (bool, error) {
	if n == 0 {
		return sum == h.Sum, nil
	}
	var b [walFrameHeaderSize]byte
	if got, err := f.ReadAt(b[:], h.frameOffset(n)); got < len(b) {
		if err == nil || err == io.EOF {
			return false, nil
		}
		return false, fmt.Errorf("read wal frame %d: %w", n, err)
	}
	return binary.BigEndian.Uint32(b[8:]) == h.Salt1 && binary.BigEndian.Uint32(b[12:]) == h.Salt2 &&
		binary.BigEndian.Uint32(b[4:]) != 0 &&
		sum == walSum{binary.BigEndian.Uint32(b[16:]), binary.BigEndian.Uint32(b[20:])}, nil
}

// openWAL opens the -wal file of the database at dbPath; a missing file
// is errNoWAL.
func openWAL(dbPath string) (*os.File, error) {
	f, err := os.Open(dbPath + "-wal")
	if errors.Is(err, os.ErrNotExist) {
		return nil, errNoWAL
	} else if err != nil {
		return nil, fmt.Errorf("open wal: %w", err)
	}
	return f, nil
}
