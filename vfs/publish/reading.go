package publish

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
)

// reading is one publish's view of the database, inside a read
// transaction (see walfollow.go for why reading the files directly is
// consistent).
type reading struct {
	conn   *sql.Conn // rollback mode: the read transaction, ended by close
	db     *os.File  // the Publisher's srcFile: never closed here (openSource says why)
	dbIno  uint64
	hdr    dbHeader
	wal    *os.File  // nil: rollback mode, or no log
	walHdr walHeader // when wal != nil
	// follow: scan continues the position (only its pages changed);
	// otherwise scan starts at the log's first frame (full), and whole
	// says why.
	follow bool
	whole  string
	scan   walScan
}

// release ends a rollback-mode read transaction once everything was read,
// so that writers need not wait for the upload.
func (r *reading) release() error {
	err := endRead(r.conn)
	r.conn = nil
	return err
}

func (r *reading) close() error {
	err := endRead(r.conn)
	r.conn = nil
	if r.wal != nil {
		r.wal.Close()
	}
	return err
}

// walMode says whether the reading is of a WAL-mode database.
func (r *reading) walMode() bool { return r.hdr.WAL }

// pos is the log position the reading reached.
func (r *reading) pos() *walPos {
	if !r.walMode() {
		return nil
	}
	if r.wal == nil {
		return &walPos{None: true, DBIno: r.dbIno}
	}
	h := r.walHdr
	return &walPos{Salt1: h.Salt1, Salt2: h.Salt2, PageSize: h.PageSize, BigEndian: h.BigEndian,
		Frames: r.scan.Frames, Sum: r.scan.Sum, DBIno: r.dbIno}
}

// commit is the database's size in pages as read: the last commit frame's,
// else the in-header size, else the file's.
func (r *reading) commit(fileSize int64) uint32 {
	switch {
	case r.scan.Commit != 0:
		return r.scan.Commit
	case r.hdr.Pages != 0:
		return r.hdr.Pages
	}
	return uint32(fileSize / int64(r.hdr.PageSize))
}

// live is the whole database as read: only for a full reading.
func (r *reading) live() (Image, error) {
	if r.follow {
		return Image{}, errors.New("internal error: a following reading has no whole image")
	}
	fi, err := r.db.Stat()
	if err != nil {
		return Image{}, fmt.Errorf("database: %w", err)
	}
	l := &liveImage{db: r.db, wal: r.wal, pages: r.scan.Pages, ps: int64(r.hdr.PageSize)}
	return Image{R: l, PageSize: r.hdr.PageSize, Commit: r.commit(fi.Size())}, nil
}

// read takes the publish's read transaction and reads the database's
// header and log: from the position when the log continues it (follow),
// else from the log's first frame.
func (p *Publisher) read(ctx context.Context) (*reading, error) {
	if err := p.checkSource(); err != nil {
		return nil, err
	}
	conn, err := beginRead(ctx, p.src)
	if err != nil {
		return nil, err
	}
	// Until the mode is known, conn is this reading's: a rollback-mode
	// database must not be left under a SHARED lock.
	r := &reading{conn: conn}
	ok := false
	defer func() {
		if !ok {
			r.close()
		}
	}()

	r.db, r.dbIno = p.srcFile, p.srcIno
	fi, err := os.Stat(p.dbPath)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	if inode(fi) != p.srcIno {
		// Replaced since checkSource: the transaction may be the old
		// file's. The next publish starts over with new connections.
		return nil, fmt.Errorf("the database file was replaced while it was read; the next publish reads the new one")
	}
	var page1 [100]byte
	if n, _ := r.db.ReadAt(page1[:], 0); n < len(page1) {
		return nil, errEmptyDatabase
	}
	if r.hdr, err = parseDBHeader(page1[:]); err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	// The new transaction is open: the old one may end (see above).
	old := p.held
	if r.walMode() {
		p.held, r.conn = conn, nil
	} else {
		// Rollback mode: the file is the database while the SHARED lock
		// lasts; nothing is held between publishes.
		p.held = nil
	}
	if err := endRead(old); err != nil || old == nil || !r.walMode() {
		p.chain = false
	}
	if err := p.refuseLitestream(ctx, conn); err != nil {
		return nil, err
	}
	if !r.walMode() {
		ok = true
		return r, nil
	}

	if r.wal, err = openWAL(p.dbPath); errors.Is(err, errNoWAL) {
		r.wal = nil
	} else if err != nil {
		return nil, err
	}
	if r.wal != nil {
		if r.walHdr, err = readWALHeader(r.wal); errors.Is(err, errNoWAL) {
			r.wal.Close()
			r.wal = nil
		} else if err != nil {
			return nil, err
		}
	}
	if r.wal != nil && r.walHdr.PageSize != r.hdr.PageSize {
		return nil, fmt.Errorf("the log's page size %d is not the database's %d", r.walHdr.PageSize, r.hdr.PageSize)
	}
	from, sum, follow, err := p.continues(r)
	if err != nil {
		return nil, err
	}
	r.follow = follow
	if r.wal != nil {
		if r.scan, err = scanWAL(r.wal, r.walHdr, from, sum); err != nil {
			return nil, err
		}
	} else {
		r.scan = walScan{Pages: map[uint32]int64{}}
	}
	ok = true
	return r, nil
}

// continues says where the log continues the position: follow is false
// when it does not (or there is no WAL position), and the publish must
// read the whole database.
func (p *Publisher) continues(r *reading) (from uint32, sum walSum, follow bool, err error) {
	w := p.pos.WAL
	full := func(why string) (uint32, walSum, bool, error) {
		r.whole = why
		return 0, r.walHdr.Sum, false, nil
	}
	const unseen = "the log was restarted or truncated since the last publish, and walrust did not hold it meanwhile"
	switch {
	case !p.hasPos:
		return 0, r.walHdr.Sum, false, nil // a snapshot: p.noPos says why
	case w == nil:
		return full("no position in the log yet")
	case w.DBIno != r.dbIno:
		return full("the database file was replaced")
	case p.pos.PageSize != r.hdr.PageSize:
		return 0, r.walHdr.Sum, false, nil // a snapshot
	case r.wal == nil && p.chain:
		// No log: a checkpoint truncated it. Only the held transaction
		// vouches that nothing was copied and truncated unseen.
		return 0, walSum{}, true, nil
	case r.wal == nil:
		return full(unseen)
	case !w.None && r.walHdr.sameGeneration(w.header()):
		match, err := frameMatches(r.wal, r.walHdr, w.Frames, w.Sum)
		if err != nil {
			return 0, walSum{}, false, err
		}
		if !match {
			return full("the log no longer holds the frame of the last publish")
		}
		return w.Frames, w.Sum, true, nil
	case p.chain:
		return 0, r.walHdr.Sum, true, nil // a new generation, read from its start
	}
	return full(unseen)
}

// stillValid checks, after every page of a reading was read, that the log
// was not restarted meanwhile (a restart rewrites the header before any
// frame).
func (r *reading) stillValid() error {
	if r.wal == nil {
		return nil
	}
	h, err := readWALHeader(r.wal)
	if err != nil || !h.sameGeneration(r.walHdr) {
		return fmt.Errorf("the log was restarted while it was read (%v); the next publish reads it again", err)
	}
	return nil
}

// readAll turns a following reading into a whole one, for a snapshot: the
// log is read again from its first frame, in the same read transaction.
func (r *reading) readAll() error {
	if !r.follow {
		return nil
	}
	r.follow = false
	if r.wal == nil {
		r.scan = walScan{Pages: map[uint32]int64{}}
		return nil
	}
	s, err := scanWAL(r.wal, r.walHdr, 0, r.walHdr.Sum)
	if err != nil {
		return err
	}
	r.scan = s
	return nil
}
