package vfs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/walrust/walrust/vfs/follow"
	"github.com/walrust/walrust/vfs/internal/durable"
	"github.com/walrust/walrust/vfs/replica"
	"github.com/walrust/walrust/vfs/store"
)

// As-of views. A connection opened with as_of= reads the database as it
// was at a past point of the store's history: a replica built once for
// that point (follow.BuildAt), kept next to the live replica in
// <db>-asof/<point>/, and never followed, so it never changes. It is read
// like a replica another process follows (replica.Passive), by any number
// of connections and processes at once.
//
// Each view directory holds the view's replica files and a lock file that
// every process reading the view holds shared; eviction, which keeps the
// viewsKept most recently opened views, takes it exclusively, so that it
// never removes a view that is being read.

// viewsKept bounds the views kept next to one replica; a variable so that
// tests can lower it.
var viewsKept = 8

const (
	viewDB       = "view.db" // the view's replica, inside its directory
	viewLockFile = "in-use"
	buildPrefix  = ".build-"   // a view being built; renamed into place when done
	evictPrefix  = ".evicted-" // a view being removed; renamed out of place first
	// staleBuild is the age past which a build directory is taken for a
	// build that a crash abandoned, and removed.
	staleBuild = time.Hour
)

// viewFiles are the files a process holds open while it reads a view.
type viewFiles struct {
	dir  string
	lock *os.File // held shared while the view is read
}

// viewsDir is where the views of the database at path are kept.
func viewsDir(path string) string { return path + "-asof" }

// viewName names the directory of the view at p: txid-<decimal>, or
// time-<UTC time, to the nanosecond>.
func viewName(p follow.Point) string {
	if p.TXID != 0 {
		return fmt.Sprintf("txid-%d", uint64(p.TXID))
	}
	return "time-" + p.Time.UTC().Format("20060102T150405.000000000Z")
}

// viewKey is an open's key in the registry: the path, and the point of a
// view (a name no path can have, for the NUL in it).
func viewKey(path string, at follow.Point) string {
	if at.IsZero() {
		return path
	}
	return path + "\x00" + viewName(at)
}

// openView starts a view entry: it opens the view of the point, building
// it first when it is not kept yet.
func (s *shared) openView(ctx context.Context) error {
	dir := filepath.Join(viewsDir(s.path), viewName(s.cfg.AsOf))
	source, opts, err := s.viewSource()
	if err != nil {
		return err
	}
	v, p, err := openBuiltView(dir, source)
	if err == nil && v == nil {
		if !s.cfg.mayCreate {
			return fmt.Errorf("%s as of %s: the view is not built yet, and this open may not create files (a read-only connection, mode=ro, or no SQLITE_OPEN_CREATE)", s.path, s.cfg.AsOf)
		}
		// Views are kept beside the replica: never beside a file that
		// walrust did not make (a plain database, a promoted replica).
		if err := replica.RefuseForeign(s.path); err != nil {
			return fmt.Errorf("%s as of %s: no view is built beside it: %w", s.path, s.cfg.AsOf, err)
		}
		if err = buildView(ctx, s.path, dir, source, opts, s.cfg); err == nil {
			v, p, err = openBuiltView(dir, source)
		}
		if err == nil && v == nil {
			err = fmt.Errorf("%s as of %s: the view was removed as soon as it was built (more than %d views are in use)", s.path, s.cfg.AsOf, viewsKept)
		}
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.view, s.passive, s.source = v, p, p.Source()
	s.mu.Unlock()
	return nil
}

// viewSource is the store a view is built from: the open's source=, or the
// one the live replica's state file names, with the store options the
// replica was made with unless the open gives some.
func (s *shared) viewSource() (string, store.Options, error) {
	opts := s.cfg.Store
	opts.Clients = s3Clients
	st, err := replica.ReadState(s.path)
	if err != nil {
		return "", opts, err
	}
	source := s.cfg.Source
	if source == "" && st != nil {
		source = st.Source
	}
	if source == "" {
		return "", opts, fmt.Errorf("%s as of %s: no source: open it with source=file:///dir or s3://bucket/prefix, or set WALRUST_SOURCE", s.path, s.cfg.AsOf)
	}
	if err := store.Check(source); err != nil {
		return "", opts, err
	}
	source = store.Canonical(source)
	if st != nil && st.Source == source && !s.cfg.ownStoreOnly() {
		opts = follow.StoreFor(opts, st.Store)
	}
	return source, opts, nil
}

// viewLockHook runs between the open of a view's lock file and its flock:
// tests evict the view there.
var viewLockHook = func(dir string) {}

// openBuiltView opens the view in dir for reading, or returns nils when
// there is none.
func openBuiltView(dir, source string) (*viewFiles, *replica.Passive, error) {
	lock, err := lockView(dir)
	if lock == nil || err != nil {
		return nil, nil, err
	}
	p, err := replica.OpenPassive(filepath.Join(dir, viewDB), "")
	switch {
	case errors.Is(err, replica.ErrNoReplica) || errors.Is(err, fs.ErrNotExist):
		lock.Close() // evicted between the open and the lock
		return nil, nil, nil
	case err != nil:
		lock.Close()
		return nil, nil, fmt.Errorf("open view %s: %w", dir, err)
	case store.Canonical(p.Source()) != source:
		p.Close()
		lock.Close()
		return nil, nil, fmt.Errorf("the view %s was built from %s, not %s: open the other source's view under another file name", dir, p.Source(), source)
	}
	now := time.Now()
	os.Chtimes(dir, now, now) // recently used, for eviction
	return &viewFiles{dir: dir, lock: lock}, p, nil
}

// lockView takes the shared lock of the view in dir, or returns nil when
// there is none. The lock taken must be that of the view that has the name
// now: a view evicted between the open and the flock (which waits for the
// eviction) and built again under its name has a new lock file, and a lock
// on the old one would not keep the next eviction from the view read.
func lockView(dir string) (*os.File, error) {
	name := filepath.Join(dir, viewLockFile)
	for try := 0; ; try++ {
		lock, err := os.Open(name)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		} else if err != nil {
			return nil, fmt.Errorf("open view %s: %w", dir, err)
		}
		viewLockHook(dir)
		// Waits only while an eviction removes the view.
		if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_SH); err != nil {
			lock.Close()
			return nil, fmt.Errorf("lock view %s: %w", dir, err)
		}
		held, err := lock.Stat()
		if err != nil {
			lock.Close()
			return nil, fmt.Errorf("lock view %s: %w", dir, err)
		}
		now, err := os.Stat(name)
		switch {
		case err == nil && os.SameFile(held, now):
			return lock, nil
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			lock.Close()
			return nil, fmt.Errorf("lock view %s: %w", dir, err)
		}
		lock.Close() // evicted meanwhile: the view under that name, if any, is another
		if try == 10 {
			return nil, fmt.Errorf("lock view %s: evicted and built again at every try", dir)
		}
	}
}

// close releases the view's lock.
func (v *viewFiles) close() { v.lock.Close() }

// buildView builds the view in a directory of its own beside dir, and
// renames it into place: a view directory is complete or absent. Two
// processes may build the same view at once; the first rename wins.
func buildView(ctx context.Context, path, dir, source string, opts store.Options, cfg Config) error {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, durable.DirMode); err != nil {
		return fmt.Errorf("%s as of %s: %w", path, cfg.AsOf, err)
	}
	tmp, err := durable.MkdirTemp(parent, buildPrefix+"*")
	if err != nil {
		return fmt.Errorf("%s as of %s: %w", path, cfg.AsOf, err)
	}
	defer os.RemoveAll(tmp) // nothing there after the rename
	st, err := store.Open(ctx, source, opts)
	if err != nil {
		return fmt.Errorf("%s as of %s: %w", path, cfg.AsOf, err)
	}
	began := time.Now()
	r, err := follow.BuildAt(ctx, st, filepath.Join(tmp, viewDB), cfg.AsOf, follow.BuildOptions{MaxSize: cfg.MaxSize, Logger: logger})
	if err != nil {
		return err
	}
	head := r.Head()
	if err := r.Close(); err != nil {
		return fmt.Errorf("%s as of %s: %w", path, cfg.AsOf, err)
	}
	if err := durable.WriteFile(filepath.Join(tmp, viewLockFile), nil); err != nil {
		return fmt.Errorf("%s as of %s: %w", path, cfg.AsOf, err)
	}
	switch err := os.Rename(tmp, dir); {
	case err == nil:
		logger.Info("built a view", "db", path, "as_of", cfg.AsOf.String(), "txid", uint64(head.TXID),
			"committed", head.Timestamp, "took", time.Since(began).Round(time.Millisecond))
	case errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY):
		// Another process built it first.
	default:
		return fmt.Errorf("%s as of %s: %w", path, cfg.AsOf, err)
	}
	if err := durable.SyncDir(parent); err != nil {
		return fmt.Errorf("%s as of %s: %w", path, cfg.AsOf, err)
	}
	evictViews(parent, dir)
	return nil
}

// evictViews removes the least recently opened views of a views directory
// beyond viewsKept (never keep, and none that a process reads), and build
// directories that a crash abandoned. Failures only cost disk space: they
// are logged.
func evictViews(parent, keep string) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		logger.Warn("list views", "dir", parent, "err", err)
		return
	}
	type kept struct {
		path string
		used time.Time
	}
	var views []kept
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || !e.IsDir() {
			continue
		}
		p := filepath.Join(parent, e.Name())
		switch {
		case strings.HasPrefix(e.Name(), buildPrefix):
			if time.Since(fi.ModTime()) > staleBuild {
				os.RemoveAll(p)
			}
		case strings.HasPrefix(e.Name(), evictPrefix):
			os.RemoveAll(p) // a removal that was interrupted
		case p != keep:
			views = append(views, kept{p, fi.ModTime()})
		}
	}
	slices.SortFunc(views, func(a, b kept) int { return a.used.Compare(b.used) })
	over := len(views) + 1 - viewsKept
	for _, v := range views {
		if over <= 0 {
			return
		}
		switch removed, err := removeView(v.path); {
		case err != nil:
			logger.Warn("remove view", "dir", v.path, "err", err)
		case removed:
			over--
		}
	}
}

// removeView removes a view that no process reads: it takes the view's
// lock exclusively, or leaves the view alone. The view leaves its name at
// once, by rename, so that no open ever finds it half removed.
func removeView(dir string) (bool, error) {
	lock, err := os.Open(filepath.Join(dir, viewLockFile))
	if err != nil {
		return false, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil // in use; a later build evicts it
	} else if err != nil {
		return false, err
	}
	gone := filepath.Join(filepath.Dir(dir), fmt.Sprintf("%s%d-%d", evictPrefix, os.Getpid(), time.Now().UnixNano()))
	if err := os.Rename(dir, gone); err != nil {
		return false, err
	}
	return true, os.RemoveAll(gone)
}
