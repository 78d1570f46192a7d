package publish

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/superfly/ltx"
)

// Following the log. A WAL-mode database is published from the frames
// committed since the last publish: the newest image of each page they
// hold, on top of the last published image. What makes that complete is
// one read transaction of the publisher's, open at every instant from the
// scan that reached the position on (p.held, handed from one connection
// to the next with the new one begun before the old one ends):
//
//   - A reader whose snapshot uses the log (SQLite's read mark 1..4) keeps
//     every checkpoint from copying frames past its snapshot into the
//     database file and from restarting the log: no frame the publisher
//     has not read can disappear.
//   - A reader that began when the whole log was already copied into the
//     database (read mark 0) stops checkpoints from copying anything. The
//     log can then restart (new salts) only while it holds nothing the
//     database file lacks — that is, nothing after the position, since the
//     previous reader kept the copy from passing what had been read — and
//     only until the next frame is written. So a new generation of the log
//     holds, from its first frame, every commit after the position.
//
// Hence, while p.chain holds, a log with other salts is read from its
// first frame. Without it (a publisher that just started, a TRUNCATE
// checkpoint of its own, a connection that failed) continuity is only
// believed when the log is the same generation and its frame at the
// position still carries the position's running checksum; otherwise the
// publish reads the whole database and compares it with the image (the
// "full compare"), so no chain ever misses a write.
//
// Reading the database file and the log directly is consistent for the
// same reason: no checkpoint copies past the held snapshot, and frames
// after it are taken only up to a valid commit frame. The one change a
// reader cannot stop — the log restarting under a read-mark-0 reader — is
// caught by reading the log's header again after every page was read.
//
// The application's own checkpoints (wal_autocheckpoint, PASSIVE) can
// therefore run as they like: they copy frames up to the held snapshot and
// never restart the log. The publisher decides when the log restarts
// (checkpoint.go).

// walPos is where the publisher stands in the log: the last commit frame
// published and the running checksum there, in one generation of the log
// (salts), of a database file (inode).
type walPos struct {
	None      bool   `json:"none,omitempty"` // there was no log header
	Salt1     uint32 `json:"salt1"`
	Salt2     uint32 `json:"salt2"`
	PageSize  uint32 `json:"page_size"`
	BigEndian bool   `json:"big_endian,omitempty"`
	Frames    uint32 `json:"frames"`
	Sum       walSum `json:"sum"`
	DBIno     uint64 `json:"db_inode"`
}

// header is the log header the position was read in.
func (w walPos) header() walHeader {
	return walHeader{BigEndian: w.BigEndian, PageSize: w.PageSize, Salt1: w.Salt1, Salt2: w.Salt2}
}

// writeWALDelta writes the pending file from a following reading: the
// pages its committed frames hold whose checksum differs from the
// published one (sums.go), pages a growing database never wrote as zeros,
// and the running checksum moved by exactly those pages, so that nothing
// reads the whole database.
func (p *Publisher) writeWALDelta(r *reading, commit uint32, ts time.Time) (FileStats, error) {
	sums, err := os.Open(p.wd.path(sumsFile))
	if err != nil {
		return FileStats{}, fmt.Errorf("page checksums: %w", err)
	}
	defer sums.Close()
	prevCommit := p.pos.Commit
	txid := p.pos.TXID + 1
	ps := r.hdr.PageSize
	lock := ltx.LockPgno(ps)
	pgnos := make([]uint32, 0, len(r.scan.Pages))
	for _, pgno := range sortedPages(r.scan.Pages) {
		if pgno <= commit && pgno != lock {
			pgnos = append(pgnos, pgno)
		}
	}
	// Pages past the old end that no frame holds read as zeros.
	grown := map[uint32]bool{}
	for pgno := prevCommit + 1; pgno <= commit; pgno++ {
		if _, ok := r.scan.Pages[pgno]; !ok && pgno != lock {
			grown[pgno] = true
			pgnos = append(pgnos, pgno)
		}
	}
	if len(grown) > 0 {
		slices.Sort(pgnos)
	}
	live := &liveImage{wal: r.wal, pages: r.scan.Pages, ps: int64(ps)}
	return writePending(p.wd.path(pendingFile), func(f *os.File) (FileStats, error) {
		hdr := newHeader(Image{PageSize: ps, Commit: commit}, txid, txid, ts, false)
		hdr.PreApplyChecksum = p.pos.Checksum
		enc, err := newFileEncoder(f, hdr, p.encodeOptions("follow", ltx.FormatFilename(txid, txid)))
		if err != nil {
			return FileStats{}, err
		}
		defer func() { _ = enc.cleanup() }()
		sum := p.pos.Checksum
		cur := make([]byte, ps)
		for _, pgno := range pgnos {
			if grown[pgno] {
				clear(cur)
			} else if err := live.walPage(pgno, cur); err != nil {
				return FileStats{}, err
			}
			now := ltx.ChecksumPageWithHasher(enc.hasher, pgno, cur)
			if pgno <= prevCommit {
				old, err := readSum(sums, pgno)
				if err != nil {
					return FileStats{}, err
				}
				if old == now {
					continue
				}
				sum ^= old
			}
			sum ^= now
			if err := enc.page(pgno, cur); err != nil {
				return FileStats{}, err
			}
		}
		// A shrinking database drops the pages past its new end.
		for pgno := commit + 1; pgno <= prevCommit; pgno++ {
			if pgno == lock {
				continue
			}
			old, err := readSum(sums, pgno)
			if err != nil {
				return FileStats{}, err
			}
			sum ^= old
		}
		return enc.close(ltx.ChecksumFlag | sum)
	})
}

// walPage reads the log's image of pgno.
func (l *liveImage) walPage(pgno uint32, buf []byte) error {
	off, ok := l.pages[pgno]
	if !ok {
		return fmt.Errorf("internal error: page %d is not in the log", pgno)
	}
	if n, err := l.wal.ReadAt(buf[:l.ps], off); n < int(l.ps) {
		return fmt.Errorf("read wal page %d: %w", pgno, errors.Join(err, io.ErrUnexpectedEOF))
	}
	return nil
}
