package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/follow"
	"github.com/walrust/walrust/vfs/publish"
	"github.com/walrust/walrust/vfs/store"
)

var restoreCommand = &command{
	name:    "restore",
	args:    "SOURCE -o DB",
	summary: "write a plain SQLite database as of a TXID or a time",
	nargs:   1,
	about: `
Writes the database that the store SOURCE holds, as of a point of its
history, to the plain SQLite file DB (-o): the primary's own file at that
TXID, its journal mode included (a WAL-mode primary gives a WAL-mode file).
Without --txid or --time it is the store's newest TXID.

--txid N is a TXID in decimal, as walrust_txid() and PRAGMA walrust_status
show it, or in the 16 hex digits of LTX file names. The store must still
reach it exactly: when retention has left it only inside a compaction, the
error names the nearest TXIDs that can be restored.

--time T is an RFC 3339 time (2025-03-01T12:00:00Z): the database with the
files written before T, as litestream restore -timestamp picks them (the LTX
header's time, strictly before T).

The database is built from the newest snapshot at or before the point and
the files after it, through whatever levels still hold them; every file is
verified as a replica verifies it, and the result against its checksum. It
is built in DB-walrust-restore/ next to DB, removed afterwards, and DB is
written at once at the end (a temporary file renamed over it). An existing
DB is overwritten only with --force, which also removes a DB-wal, DB-shm or
DB-journal left beside it.

SOURCE is file:///absolute/dir or s3://bucket/prefix; S3 options come from
the flags, the URL parameters endpoint=, region= and path_style=, or the
usual AWS environment variables.`,
}

func init() {
	restoreCommand.flags = func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
		var sf storeFlags
		out := fs.String("o", "", "the `DB` file to write (required)")
		txid := fs.String("txid", "", "restore `TXID` (decimal, or 16 hex digits)")
		at := fs.String("time", "", "restore as of `TIME` (RFC 3339: 2025-03-01T12:00:00Z)")
		force := fs.Bool("force", false, "overwrite DB if it exists")
		var maxSize int64
		fs.Func("max-size", "refuse LTX files that describe a database larger than `SIZE`: 500GB, 2TiB (default 1TiB)", func(s string) error {
			n, err := follow.ParseSize(s)
			maxSize = n
			return err
		})
		sf.register(fs)
		var lo logOpts
		lo.register(fs, false)
		return func(ctx context.Context, e *env, args []string) error {
			var p follow.Point
			switch {
			case *out == "":
				return usagef("missing -o DB: the database file to write")
			case *txid != "" && *at != "":
				return usagef("give --txid or --time, not both")
			case *txid != "":
				n, err := follow.ParseTXID(*txid)
				if err != nil {
					return usagef("--txid: %v", err)
				}
				p.TXID = n
			case *at != "":
				t, err := follow.ParseTime(*at)
				if err != nil {
					return usagef("--time %v", err)
				}
				p.Time = t
			}
			e.log = newLineLog(lo.format, "cmd", "restore", "db", *out)
			return runRestore(ctx, e, args[0], *out, &sf, restoreOpts{at: p, force: *force, maxSize: maxSize})
		}
	}
}

type restoreOpts struct {
	at      follow.Point
	force   bool
	maxSize int64
}

func runRestore(ctx context.Context, e *env, source, out string, sf *storeFlags, o restoreOpts) error {
	if err := checkSource(source); err != nil {
		return err
	}
	out, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	work := out + "-walrust-restore"
	if err := checkRestoreTarget(out, work, o.force); err != nil {
		return err
	}
	// Ctrl-C ends the build cleanly: the deferred removals run.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := openStore(ctx, source, sf, false)
	if err != nil {
		return err
	}
	if err := os.Mkdir(work, 0o755); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer os.RemoveAll(work)

	prog := newRestoreProgress(e, filepath.Base(out))
	r, err := follow.BuildAt(ctx, st, filepath.Join(work, "db"), o.at, follow.BuildOptions{
		MaxSize: o.maxSize,
		Logger:  followerLogger(os.Getenv("WALRUST_LOG"), e.log),
		OnEvent: prog.event,
		OnPlan:  prog.plan,
	})
	if err != nil {
		return err // it names the store and the point
	}
	defer r.Close()
	if o.force {
		// A journal or WAL of the file replaced would be read with the new
		// one, as if it belonged to it.
		for _, side := range []string{out + "-wal", out + "-shm", out + "-journal"} {
			if err := os.Remove(side); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("restore: %w", err)
			}
		}
	}
	ex, err := r.Export(ctx, out)
	if err != nil {
		return fmt.Errorf("restore %s: %w", out, err)
	}
	mode := "rollback journal"
	if ex.WAL {
		mode = "WAL"
	}
	size := int64(ex.Commit) * int64(ex.PageSize)
	e.log.line(e.stdout, slog.LevelInfo,
		fmt.Sprintf("Restored TXID %d (committed %s) to %s: %s, %d pages of %d bytes, %s mode",
			uint64(ex.TXID), ex.Timestamp.UTC().Format(time.RFC3339Nano), out, formatBytes(size), ex.Commit, ex.PageSize, mode),
		"txid", uint64(ex.TXID), "committed", ex.Timestamp.UTC(), "path", out, "bytes", size, "wal", ex.WAL)
	return nil
}

// checkRestoreTarget refuses to overwrite DB (or a WAL or journal that
// SQLite would read with it) without --force, and never writes over a
// directory. The work directory may be left by a restore that was killed:
// --force removes it.
func checkRestoreTarget(out, work string, force bool) error {
	if fi, err := os.Stat(out); err == nil && fi.IsDir() {
		return fmt.Errorf("%s is a directory", out)
	}
	if fi, err := os.Stat(filepath.Dir(out)); err != nil || !fi.IsDir() {
		return fmt.Errorf("cannot write %s: its directory %s does not exist", out, filepath.Dir(out))
	}
	// Not even --force replaces a replica's base file: its state file would
	// describe another database, and the process that follows it would go
	// on patching the file restored.
	if _, err := os.Lstat(out + "-replica-state"); err == nil {
		return fmt.Errorf("%s is a walrust replica (it has %s-replica-state); restore to another path, or make it a plain database with walrust promote", out, out)
	}
	for _, p := range []string{out, out + "-wal", out + "-shm", out + "-journal"} {
		if _, err := os.Lstat(p); err == nil && !force {
			return fmt.Errorf("%s exists; --force overwrites it", p)
		} else if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if _, err := os.Lstat(work); err == nil {
		if !force {
			return fmt.Errorf("%s exists (left by a restore that was interrupted?); --force removes it", work)
		}
		if err := os.RemoveAll(work); err != nil {
			return fmt.Errorf("remove %s: %w", work, err)
		}
	}
	return nil
}

// restoreProgress shows how much of the plan is downloaded and applied,
// as publish shows its phases: one line rewritten on a terminal, a log
// line every few seconds otherwise.
type restoreProgress struct {
	e  *env
	pp *progressPrinter

	mu      sync.Mutex
	start   time.Time
	total   int64 // bytes the plan lists
	done    int64 // bytes of the files applied
	files   int
	applied int
}

func newRestoreProgress(e *env, db string) *restoreProgress {
	pp := newProgressPrinter(e.stderr, db)
	pp.log = e.log
	pp.tty = pp.tty && e.log.format == logPlain
	return &restoreProgress{e: e, pp: pp, start: time.Now()}
}

func (p *restoreProgress) plan(target ltx.TXID, files []store.FileInfo) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range files {
		p.total += f.Size
	}
	p.files = len(files)
	p.e.log.line(p.e.stderr, slog.LevelInfo,
		fmt.Sprintf("Restoring TXID %d: snapshot %s and %s after it, %s", uint64(target), fileName(files[0]), plural(len(files)-1, "file", "files"), formatBytes(p.total)),
		"txid", uint64(target), "files", len(files), "bytes", p.total)
}

func (p *restoreProgress) event(ev follow.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var done int64
	switch ev.Kind {
	case follow.EventProgress: // within the snapshot
		done = p.done + ev.Done
	case follow.EventSnapshotInstalled, follow.EventApplied:
		p.done += ev.File.Size
		p.applied++
		done = p.done
	default:
		return
	}
	if p.total > 0 && p.applied < p.files && done >= p.total {
		done = p.total - 1 // not done until the last file is applied
	}
	p.pp.report(publish.Progress{Phase: "download", Done: done, Total: p.total, Elapsed: time.Since(p.start)})
}
