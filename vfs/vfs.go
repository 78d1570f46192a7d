package vfs

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/psanford/sqlite3vfs"
)

// Name is the VFS name to put in URIs: file:app.db?vfs=walrust&source=...
const Name = "walrust"

var registerOnce = sync.OnceValue(func() error {
	if err := configureDefault(os.Getenv); err != nil {
		return err
	}
	skipFileIDZero()
	if err := sqlite3vfs.RegisterVFS(Name, &walrustVFS{}); err != nil {
		return fmt.Errorf("register VFS %q: %w", Name, err)
	}
	return installLayer()
})

// Register registers the walrust VFS with SQLite. It is safe to call more
// than once; only the first call registers. With WALRUST_DEFAULT_VFS=1 in
// the environment it also makes walrust SQLite's default VFS, serving the
// replicas it knows and passing every other file through (defaultvfs.go).
func Register() error { return registerOnce() }

type walrustVFS struct{}

var (
	_ sqlite3vfs.ExtendedVFSv1 = (*walrustVFS)(nil)
	_ sqlite3vfs.URIOpener     = (*walrustVFS)(nil)
)

func (v *walrustVFS) Open(name string, flags sqlite3vfs.OpenFlag) (sqlite3vfs.File, sqlite3vfs.OpenFlag, error) {
	return v.OpenURI(name, nil, flags)
}

// OpenURI opens a main database as a replica, and anything SQLite needs
// besides (temporary files for sorting and temp tables) as a private file.
// A journal or WAL is never opened: the database is read-only.
func (v *walrustVFS) OpenURI(name string, params map[string]string, flags sqlite3vfs.OpenFlag) (f sqlite3vfs.File, out sqlite3vfs.OpenFlag, err error) {
	defer guard("open", &err)
	switch {
	case flags&sqlite3vfs.OpenMainDB != 0:
		f, err := openDB(name, params, flags)
		if err != nil {
			logger.Error("cannot open database", "db", name, "err", err)
			return nil, 0, sqlite3vfs.CantOpenError
		}
		// Reporting read-only makes SQLite refuse every write with
		// SQLITE_READONLY before it creates a journal.
		return f, sqlite3vfs.OpenReadOnly, nil
	case flags&(sqlite3vfs.OpenMainJournal|sqlite3vfs.OpenWAL|sqlite3vfs.OpenSuperJournal) != 0:
		return nil, 0, sqlite3vfs.ReadOnlyError
	default:
		f, err := openTemp(name, flags)
		if err != nil {
			logger.Error("cannot open temporary file", "err", err)
			return nil, 0, sqlite3vfs.CantOpenError
		}
		return f, flags, nil
	}
}

// Delete is only ever asked for journals and WAL files, which a replica
// never has; temporary files delete themselves on close.
func (v *walrustVFS) Delete(name string, dirSync bool) error { return nil }

// Access says no -journal or -wal file exists next to a replica, so SQLite
// never tries to roll one back or open a WAL.
func (v *walrustVFS) Access(name string, flag sqlite3vfs.AccessFlag) (bool, error) {
	return false, nil
}

// FullPathname resolves symbolic links, as SQLite's own unix VFS does: the
// registry keeps one follower per name, so two names of one file would
// otherwise get two followers writing the same replica files.
func (v *walrustVFS) FullPathname(name string) string {
	abs, err := filepath.Abs(name)
	if err != nil {
		return name
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		return real
	}
	// The file does not exist yet (a first open): resolve its directory.
	if dir, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		return filepath.Join(dir, filepath.Base(abs))
	}
	return abs
}

func (v *walrustVFS) Randomness(p []byte) int {
	n, _ := rand.Read(p) // crypto/rand never fails on Linux
	return n
}

func (v *walrustVFS) Sleep(d time.Duration) { time.Sleep(d) }

func (v *walrustVFS) CurrentTime() time.Time { return time.Now() }

// guard turns a panic into an I/O error: no Go panic may unwind into
// SQLite's C frames.
func guard(op string, err *error) {
	if p := recover(); p != nil {
		logger.Error("internal error", "op", op, "panic", p, "stack", string(debug.Stack()))
		*err = sqlite3vfs.IOError
	}
}

// tempFile is a private scratch file (sort runs, temp tables, statement
// journals), removed as soon as it is created so nothing is left behind.
type tempFile struct {
	*os.File
}

func openTemp(name string, flags sqlite3vfs.OpenFlag) (*tempFile, error) {
	f, err := os.CreateTemp("", "walrust-tmp-*")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	return &tempFile{f}, nil
}

func (t *tempFile) ReadAt(p []byte, off int64) (n int, err error) {
	defer guard("read temp", &err)
	n, err = t.File.ReadAt(p, off)
	if err != nil && n < len(p) {
		clear(p[n:])
	}
	return n, err
}

func (t *tempFile) Sync(flag sqlite3vfs.SyncType) error { return nil }

func (t *tempFile) FileSize() (int64, error) {
	fi, err := t.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (t *tempFile) Lock(sqlite3vfs.LockType) error   { return nil }
func (t *tempFile) Unlock(sqlite3vfs.LockType) error { return nil }

// CheckReservedLock: sqlite3vfs inverts the result (true reports "no
// reserved lock"); a private file is never locked by anyone else.
func (t *tempFile) CheckReservedLock() (bool, error)                       { return true, nil }
func (t *tempFile) SectorSize() int64                                      { return 4096 }
func (t *tempFile) DeviceCharacteristics() sqlite3vfs.DeviceCharacteristic { return 0 }
