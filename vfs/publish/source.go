package publish

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"
)

// errEmptyDatabase reports a source database with no pages yet (a file that
// SQLite created but nothing was written to).
var errEmptyDatabase = errors.New("database is empty")

// sqliteURI is a file: URI for path that SQLite and mattn/go-sqlite3 both
// parse, whatever characters the path holds, with the given query.
func sqliteURI(path string, query string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	u := url.URL{Scheme: "file", Path: abs, RawQuery: query}
	return u.String(), nil
}

// openSource opens the database to publish, and says which file (inode)
// its connections will open. mode=rw: never create it. The publisher
// reads the database's files itself, inside read transactions of these
// connections (at most three: two for handing a held read transaction
// over, one for checkpoints). Two stay open between publishes, so that a
// publish opens no connection; they hold no lock, but in WAL mode one of
// them holds the read transaction (see walfollow.go). A database file
// replaced by another (a restore, a rename over it) gets new connections:
// see Publisher.checkSource.
//
// The publisher reads the database file through file, one descriptor
// opened here and closed only after the connections (closeSource), never
// through a descriptor of its own per read: POSIX advisory locks belong to
// the process and the file, not to a descriptor, so closing any descriptor
// of the database file drops every lock SQLite holds on it in this
// process. In WAL mode that is the SHARED lock that keeps an application's
// last closing connection from checkpointing and deleting the log under
// the publisher's read transaction (which then saw no commit again).
func openSource(path string, busyTimeout time.Duration) (db *sql.DB, file *os.File, ino uint64, err error) {
	if file, err = os.Open(path); err != nil {
		return nil, nil, 0, fmt.Errorf("database %s: %w", path, err)
	}
	fi, err := file.Stat()
	if err != nil {
		file.Close() // no connection yet: no lock to drop
		return nil, nil, 0, fmt.Errorf("database %s: %w", path, err)
	}
	dsn, err := sqliteURI(path, fmt.Sprintf("mode=rw&_busy_timeout=%d", busyTimeout.Milliseconds()))
	if err == nil {
		db, err = sql.Open("sqlite3", dsn)
	}
	if err != nil {
		file.Close()
		return nil, nil, 0, fmt.Errorf("database %s: %w", path, err)
	}
	db.SetMaxOpenConns(3)
	db.SetMaxIdleConns(2)
	return db, file, inode(fi), nil
}

// closeSource closes the connections, then the descriptor (see openSource
// for why in that order). nil is nothing to close (a checkSource whose
// reopening failed).
func closeSource(db *sql.DB, file *os.File) error {
	var err error
	if db != nil {
		err = db.Close()
	}
	if file != nil {
		err = errors.Join(err, file.Close())
	}
	return err
}

// checkSource starts over with new connections when the file at the
// database's path is no longer the one they opened: reading the new file
// under a read transaction of the old one would be reading without
// protection. It breaks the chain; the next reading compares in full.
func (p *Publisher) checkSource() error {
	fi, err := os.Stat(p.dbPath)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	if inode(fi) == p.srcIno {
		return nil
	}
	err = errors.Join(endRead(p.held), closeSource(p.src, p.srcFile))
	// Until a reopening succeeds there is no source: not the closed one,
	// whose inode may come back at the path (renamed back, or reused), and
	// then be taken for the file the closed connections opened. Inode 0
	// matches no file, so every publish tries to open it again.
	p.held, p.chain = nil, false
	p.src, p.srcFile, p.srcIno = nil, nil, 0
	src, file, ino, oerr := openSource(p.dbPath, p.opts.BusyTimeout)
	if oerr != nil {
		return errors.Join(err, oerr)
	}
	p.src, p.srcFile, p.srcIno = src, file, ino
	return err
}

// beginRead opens a read transaction on a connection of its own and makes
// it take its snapshot: in WAL mode the database as of the last commit,
// which SQLite will not checkpoint past nor restart the log under while
// the transaction lasts; in rollback mode a SHARED lock, which keeps
// writers from changing the file. endRead ends it.
func beginRead(ctx context.Context, db *sql.DB) (*sql.Conn, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		conn.Close()
		return nil, fmt.Errorf("begin read transaction: %w", err)
	}
	var n int
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master").Scan(&n); err != nil {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		conn.Close()
		return nil, fmt.Errorf("begin read transaction: %w", err)
	}
	return conn, nil
}

// endRead ends a read transaction beginRead opened and closes its
// connection. nil is nothing to end.
func endRead(conn *sql.Conn) error {
	if conn == nil {
		return nil
	}
	_, err := conn.ExecContext(context.Background(), "ROLLBACK")
	if err != nil {
		err = fmt.Errorf("end read transaction: %w", err)
	}
	return errors.Join(err, conn.Close())
}

// dbHeader is what the publisher reads of a database file's first page.
type dbHeader struct {
	PageSize uint32
	WAL      bool   // bytes 18-19: the database is in WAL mode
	Pages    uint32 // the in-header size, when valid (0 otherwise)
}

// parseDBHeader reads the header of page 1 (at least 100 bytes).
func parseDBHeader(b []byte) (dbHeader, error) {
	if len(b) < 100 || string(b[:16]) != "SQLite format 3\x00" {
		return dbHeader{}, errors.New("not a SQLite database")
	}
	h := dbHeader{PageSize: uint32(binary.BigEndian.Uint16(b[16:])), WAL: b[18] == 2 && b[19] == 2}
	if h.PageSize == 1 {
		h.PageSize = 65536
	}
	// The in-header size is valid when version-valid-for equals the change
	// counter (SQLite 3.7.0 and later always keep them so).
	if binary.BigEndian.Uint32(b[92:]) == binary.BigEndian.Uint32(b[24:]) {
		h.Pages = binary.BigEndian.Uint32(b[28:])
	}
	return h, nil
}

// inode is the inode number of an open file (0 if unknown).
func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

// liveImage reads the database as a read transaction sees it without a
// copy: the database file, with the newest committed page images of the
// log on top (pages, from a walScan). It is consistent only while a read
// transaction holds the snapshot it describes (see walfollow.go for why
// backfills cannot change it underneath) and the log is not rewritten,
// which the caller checks after reading.
type liveImage struct {
	db    *os.File
	wal   *os.File // nil: no log pages
	pages map[uint32]int64
	ps    int64
}

// ReadAt reads whole pages (off and len(p) multiples of the page size).
// Runs of pages that the log does not hold are read from the database
// file at once; past its end they are zeros (pages SQLite never wrote).
func (l *liveImage) ReadAt(p []byte, off int64) (int, error) {
	if off%l.ps != 0 || int64(len(p))%l.ps != 0 {
		return 0, fmt.Errorf("live read of %d bytes at %d is not page-aligned", len(p), off)
	}
	run := -1 // start in p of a run of pages to read from the database file
	flush := func(end int) error {
		if run < 0 {
			return nil
		}
		b := p[run:end]
		n, err := l.db.ReadAt(b, off+int64(run))
		if err != nil && err != io.EOF {
			return fmt.Errorf("read database: %w", err)
		}
		clear(b[n:])
		run = -1
		return nil
	}
	for i := 0; i < len(p); i += int(l.ps) {
		pgno := uint32((off+int64(i))/l.ps) + 1
		walOff, ok := l.pages[pgno]
		if !ok {
			if run < 0 {
				run = i
			}
			continue
		}
		if err := flush(i); err != nil {
			return 0, err
		}
		if n, err := l.wal.ReadAt(p[i:i+int(l.ps)], walOff); n < int(l.ps) {
			return 0, fmt.Errorf("read wal page %d: %w", pgno, errors.Join(err, io.ErrUnexpectedEOF))
		}
	}
	if err := flush(len(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// page reads one page.
func (l *liveImage) page(pgno uint32, buf []byte) error {
	_, err := l.ReadAt(buf[:l.ps], int64(pgno-1)*l.ps)
	return err
}

// sortedPages are the keys of a page map in ascending order.
func sortedPages(m map[uint32]int64) []uint32 {
	pgnos := make([]uint32, 0, len(m))
	for p := range m {
		pgnos = append(pgnos, p)
	}
	sort.Slice(pgnos, func(i, j int) bool { return pgnos[i] < pgnos[j] })
	return pgnos
}
