package publish

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/mattn/go-sqlite3"
)

// errEmptyDatabase reports a source database with no pages yet (a file that
// SQLite created but nothing was written to).
var errEmptyDatabase = errors.New("database is empty")

// copyStepPages is how many pages one sqlite3_backup_step copies; between
// steps the copy reports progress and notices cancellation.
const copyStepPages = 1024

// schemaCookieOffset is where page 1 keeps the schema cookie. The backup API
// sets it in the copy to (the destination's old cookie + 1), so that
// connections to the destination reload their schema; the copy must carry
// the source's value instead, or replicas would miss schema changes.
const schemaCookieOffset = 40

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

// openSource opens the database to publish. mode=rw: never create it. No
// connection stays open between publishes, so the publisher never stands in
// the way of the primary's own exclusive operations (leaving WAL mode, for
// one) and follows a database file that is replaced.
func openSource(path string, busyTimeout time.Duration) (*sql.DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	dsn, err := sqliteURI(path, fmt.Sprintf("mode=rw&_busy_timeout=%d", busyTimeout.Milliseconds()))
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(0)
	return db, nil
}

// copyDatabase makes dst a page-for-page copy of the database src as of one
// read transaction, with the source's schema cookie on page 1. Only bytes
// 24-27 and 92-99 of page 1 (change counter, version-valid-for, SQLite
// version) differ from the source's own page 1: the copy's commit sets them.
// In rollback-journal mode writers wait while the copy runs (SQLite's SHARED
// lock); in WAL mode they do not.
func copyDatabase(ctx context.Context, src *sql.DB, dst string, progress func(done, total int64)) (err error) {
	if err := removeCopy(dst); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, removeCopy(dst))
		}
	}()

	conn, err := src.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	// One read transaction spans the schema cookie and every backup step.
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		return fmt.Errorf("begin read transaction: %w", err)
	}
	defer func() {
		if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil {
			err = errors.Join(err, fmt.Errorf("end read transaction: %w", rerr))
		}
	}()
	var cookie, pageCount, pageSize int64
	if err := conn.QueryRowContext(ctx, "PRAGMA schema_version").Scan(&cookie); err != nil {
		return fmt.Errorf("read schema cookie: %w", err)
	}
	if err := conn.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pageCount); err != nil {
		return fmt.Errorf("read page count: %w", err)
	}
	if err := conn.QueryRowContext(ctx, "PRAGMA page_size").Scan(&pageSize); err != nil {
		return fmt.Errorf("read page size: %w", err)
	}
	if pageCount == 0 {
		return errEmptyDatabase
	}

	if err := backup(ctx, conn, dst, pageCount*pageSize, progress); err != nil {
		return err
	}
	return patchCopy(dst, uint32(cookie))
}

// backup runs the online backup from the source connection (in its read
// transaction) into a new database file dst.
func backup(ctx context.Context, srcConn *sql.Conn, dst string, total int64, progress func(done, total int64)) error {
	dsn, err := sqliteURI(dst, "_journal_mode=OFF&_sync=OFF")
	if err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	dstDB, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	defer dstDB.Close()
	dstConn, err := dstDB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	defer dstConn.Close()

	err = srcConn.Raw(func(s any) error {
		return dstConn.Raw(func(d any) error {
			sc, ok1 := s.(*sqlite3.SQLiteConn)
			dc, ok2 := d.(*sqlite3.SQLiteConn)
			if !ok1 || !ok2 {
				return errors.New("not a mattn/go-sqlite3 connection")
			}
			b, err := dc.Backup("main", sc, "main")
			if err != nil {
				return err
			}
			return errors.Join(stepBackup(ctx, b, total, progress), b.Finish())
		})
	})
	if err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	if err := dstConn.Close(); err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	if err := dstDB.Close(); err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	return nil
}

// stepBackup copies copyStepPages pages at a time until the copy is done.
// Step reports SQLITE_BUSY and SQLITE_LOCKED as no progress; the source is
// held in a read transaction, so those are not expected, but if they come
// the loop waits a little instead of spinning.
func stepBackup(ctx context.Context, b *sqlite3.SQLiteBackup, total int64, progress func(done, total int64)) error {
	remaining := -1
	for {
		done, err := b.Step(copyStepPages)
		if err != nil {
			return err
		}
		if !done && b.Remaining() == remaining {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
		remaining = b.Remaining()
		if progress != nil && b.PageCount() > 0 {
			copied := int64(b.PageCount()-b.Remaining()) * total / int64(b.PageCount())
			progress(copied, total)
		}
		if done {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// patchCopy writes the source's schema cookie into the copy and makes the
// copy durable.
func patchCopy(dst string, cookie uint32) error {
	f, err := os.OpenFile(dst, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("patch copy: %w", err)
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], cookie)
	if _, err := f.WriteAt(b[:], schemaCookieOffset); err != nil {
		f.Close()
		return fmt.Errorf("patch copy %s: %w", dst, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("patch copy %s: %w", dst, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("patch copy %s: %w", dst, err)
	}
	return nil
}

// removeCopy removes a copy and any journal SQLite left beside it.
func removeCopy(path string) error {
	var errs []error
	for _, p := range []string{path, path + "-journal", path + "-wal", path + "-shm"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
