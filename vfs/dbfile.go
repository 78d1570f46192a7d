package vfs

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/psanford/sqlite3vfs"
	"github.com/walrust/walrust/vfs/replica"
)

// dbFile is one connection's handle on a replica. It pins the newest
// version when SQLite takes its SHARED lock at the start of a read
// transaction (or, when another process follows the replica, takes
// SQLite's shared lock on the file), reads only that version until the lock
// is dropped, and so sees exactly one TXID per transaction.
type dbFile struct {
	s       *shared
	maxLag  time.Duration    // this connection's max_lag: refuse transactions on a staler replica
	pinned  *replica.Version // set between SHARED lock and unlock
	end     func()           // ends the pinned transaction
	revoker replica.Revoker  // set while the C layer reads pinned directly
	direct  *directOut       // the C layer's struct for this file (layer.go); nil without the layer
}

var (
	_ sqlite3vfs.File           = (*dbFile)(nil)
	_ sqlite3vfs.FileController = (*dbFile)(nil)
)

func openDB(name string, params map[string]string, flags sqlite3vfs.OpenFlag) (*dbFile, error) {
	cfg, err := parseConfig(params, os.Getenv)
	if err != nil {
		return nil, err
	}
	// WALRUST_REPLICAS names the source of a mapped replica the URI does
	// not, over WALRUST_SOURCE; the operator who set it allows the
	// bootstrap, also from an open that may not create files. Not a view
	// (as_of=): that is a full copy of the database per point, which SQL
	// on a read-only connection would otherwise make at will.
	mapped := false
	if _, ok := params["source"]; !ok {
		if src, ok := mappedSource(name); ok {
			cfg.Source, mapped = src, true
		}
	}
	cfg.mayCreate = flags&sqlite3vfs.OpenCreate != 0 || mapped && cfg.AsOf.IsZero()
	if err := checkOpen(name, cfg); err != nil {
		return nil, err
	}
	s, err := acquire(name, cfg)
	if err != nil {
		return nil, err
	}
	return &dbFile{s: s, maxLag: cfg.MaxLag}, nil
}

func (f *dbFile) Close() (err error) {
	defer guard("close", &err)
	f.endTransaction()
	f.s.release()
	return nil
}

// version is the pinned version, or — for the reads SQLite makes outside a
// transaction, such as the header at open — the newest one, pinned for the
// duration of the call.
func (f *dbFile) version() (*replica.Version, func(), error) {
	if f.pinned != nil {
		return f.pinned, func() {}, nil
	}
	v, end, err := f.s.begin()
	if err != nil {
		// SQLite reports only a code: say why here.
		logger.Error("read replica", "db", f.s.path, "err", err)
	}
	return v, end, err
}

// readHook, when a test sets it (testhooks.SetReadHook), sees every read
// SQLite makes of a database file (the page cache test counts them). Nil
// in production.
var readHook atomic.Pointer[func(path string, off int64, n int)]

func (f *dbFile) ReadAt(p []byte, off int64) (n int, err error) {
	defer guard("read", &err)
	f.adopt()
	if h := readHook.Load(); h != nil {
		(*h)(f.s.path, off, len(p))
	}
	v, done, err := f.version()
	if err != nil {
		return 0, sqlite3vfs.IOErrorRead
	}
	defer done()
	n, err = v.ReadAt(p, off)
	if err != nil && !errors.Is(err, io.EOF) {
		logger.Error("read failed", "db", f.s.path, "offset", off, "err", err)
		return n, sqlite3vfs.IOErrorRead
	}
	return n, err
}

func (f *dbFile) FileSize() (size int64, err error) {
	defer guard("size", &err)
	f.adopt()
	v, done, err := f.version()
	if err != nil {
		return 0, sqlite3vfs.IOError
	}
	defer done()
	return v.Size(), nil
}

// Lock begins a read transaction at SHARED (see shared.begin). Anything
// stronger is a write, which a replica refuses; SQLite does not ask for it
// because the open said read-only.
func (f *dbFile) Lock(l sqlite3vfs.LockType) (err error) {
	defer guard("lock", &err)
	if l > sqlite3vfs.LockShared {
		return sqlite3vfs.ReadOnlyError
	}
	if f.pinned == nil {
		if f.maxLag > 0 {
			if why := f.s.staleness(f.maxLag); why != "" {
				f.s.refuseStale(why)
				return sqlite3vfs.IOError
			}
		}
		v, end, err := f.s.begin()
		if err != nil {
			logger.Error("begin read transaction", "db", f.s.path, "err", err)
			return sqlite3vfs.BusyError
		}
		f.pinned, f.end = v, end
		f.fillDirect()
	}
	return nil
}

func (f *dbFile) Unlock(l sqlite3vfs.LockType) (err error) {
	defer guard("unlock", &err)
	if l == sqlite3vfs.LockNone {
		f.endTransaction()
	}
	return nil
}

// endTransaction unpins the transaction's version, if any; the C layer
// has stopped reading it directly before it calls in (layerUnlock,
// layerClose).
func (f *dbFile) endTransaction() {
	if f.pinned == nil {
		return
	}
	if f.revoker != nil {
		f.pinned.Undirect(f.revoker)
		f.revoker = nil
	}
	f.end()
	f.pinned, f.end = nil, nil
}

// CheckReservedLock: sqlite3vfs inverts the result (true reports "no
// reserved lock"), and no connection ever holds one on a replica.
func (f *dbFile) CheckReservedLock() (bool, error) { return true, nil }

func (f *dbFile) WriteAt(p []byte, off int64) (int, error) { return 0, sqlite3vfs.ReadOnlyError }
func (f *dbFile) Truncate(size int64) error                { return sqlite3vfs.ReadOnlyError }
func (f *dbFile) Sync(flag sqlite3vfs.SyncType) error      { return nil }
func (f *dbFile) SectorSize() int64                        { return 4096 }

// DeviceCharacteristics must not say IOCAP_IMMUTABLE: the file changes.
func (f *dbFile) DeviceCharacteristics() sqlite3vfs.DeviceCharacteristic { return 0 }

// FileControl answers walrust's PRAGMAs; any other PRAGMA goes on to SQLite
// (SQLITE_NOTFOUND).
func (f *dbFile) FileControl(op int, name string, value *string) (res *string, err error) {
	defer guard("pragma", &err)
	f.adopt()
	var out string
	switch strings.ToLower(name) {
	case "walrust_txid":
		v, done, err := f.version()
		if err != nil {
			return nil, sqlite3vfs.IOError
		}
		out = strconv.FormatUint(uint64(v.TXID), 10)
		done()
	case "walrust_call_wait", "walrust_call_sync":
		out = f.call(strings.ToLower(name), value)
	case "walrust_lag":
		out = strconv.FormatFloat(f.s.status().LagSeconds, 'f', 3, 64)
	case "walrust_status":
		b, err := json.Marshal(f.s.status())
		if err != nil {
			return nil, sqlite3vfs.IOError
		}
		out = string(b)
	case "locking_mode":
		// In exclusive mode SQLite never drops its SHARED lock, so the
		// connection would stay pinned to one version for good: never see
		// a newer TXID, and hold every older page image. Answering the
		// PRAGMA here keeps SQLite from applying it; the row it returns
		// says the mode stays normal.
		if value == nil || !strings.EqualFold(strings.TrimSpace(*value), "exclusive") {
			return nil, sqlite3vfs.NotFoundError
		}
		logger.Warn("PRAGMA locking_mode=exclusive is not applied to a replica: the connection would never see a newer TXID; it stays normal", "db", f.s.path)
		out = "normal"
	default:
		return nil, sqlite3vfs.NotFoundError
	}
	return &out, nil
}
