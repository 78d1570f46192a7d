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
	"syscall"
	"time"

	"github.com/walrust/walrust/vfs/publish"
)

var publishCommand = &command{
	name:    "publish",
	args:    "DB DEST",
	summary: "publish a SQLite database's changes as LTX files",
	nargs:   2,
	about: `
Publishes what changed in the SQLite database DB since the last publish to
DEST, in Litestream v0.5's layout: a snapshot (level 9) the first time, then
one level-0 LTX file per change holding only the changed pages. A WAL-mode
database is published from its -wal file (the frames committed since the
last publish): the cost follows the change, not the database. walrust then
holds a read transaction and decides when the log restarts (PASSIVE
checkpoints; see the README), so it refuses a database Litestream
replicates too, and the application cannot leave WAL mode while it runs. A
rollback-journal database is read once and compared, page by page, with the
checksums of the published state, in one read transaction.

DEST is file:///absolute/dir (created if missing) or s3://bucket/prefix.

Without --interval, walrust publishes once and exits. With it, walrust keeps
publishing until SIGINT or SIGTERM, finishes the file in hand and exits 0
(a second signal stops it at once; the next run picks up safely).

The position (last TXID, checksum, where it stands in the log, an image of
the last published state, updated in place) is kept in DB-walrust-publish/
next to the database, so that a restart continues the TXID sequence. It
needs as much disk space as the database.

Like Litestream, walrust writes a new snapshot of the published state once
the newest one is older than --snapshot-interval, and deletes the files that
a snapshot older than --retention makes unnecessary (a replica further
behind than that starts over from the newest snapshot). The newest snapshot
and the newest level-0 file are always kept. 0 disables either.

A database that walrust promote made from a replica continues the store's
lineage: the first publish writes the store's TXID + 1, and the other
replicas follow it. If the store has moved past the promoted TXID (the old
primary still publishes), the publish fails instead of forking the history;
--new-lineage publishes a snapshot after the store's head instead.`,
}

func init() {
	publishCommand.flags = func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
		var sf storeFlags
		sf.register(fs)
		var pf publishFlags
		durationVar(fs, &pf.interval, "interval", 0, "keep publishing, this often (e.g. 1s); 0 (the default): publish once")
		fs.StringVar(&pf.workDir, "work-dir", "", "`dir` to keep the position in (default DB-walrust-publish)")
		durationVar(fs, &pf.snapshotInterval, "snapshot-interval", 24*time.Hour, "write a new snapshot once the newest is older than `D` (default 24h); 0: never")
		durationVar(fs, &pf.retention, "retention", 24*time.Hour, "delete files covered by a snapshot older than `D` (default 24h); 0: keep everything")
		fs.BoolVar(&pf.newLineage, "new-lineage", false, "publish a database that walrust promote made although the store has moved past it: a snapshot after the store's head, from which every replica starts over")
		var lo logOpts
		lo.register(fs, false)
		return func(ctx context.Context, e *env, args []string) error {
			for _, d := range []struct {
				name string
				v    time.Duration
			}{{"interval", pf.interval}, {"snapshot-interval", pf.snapshotInterval}, {"retention", pf.retention}} {
				if d.v < 0 {
					return usagef("--%s %s: must not be negative", d.name, d.v)
				}
			}
			e.log = newLineLog(lo.format, "cmd", "publish", "db", args[0])
			return runPublish(ctx, e, args[0], args[1], &sf, pf)
		}
	}
}

// publishFlags are publish's own flags.
type publishFlags struct {
	interval, snapshotInterval, retention time.Duration
	workDir                               string
	newLineage                            bool
}

func runPublish(ctx context.Context, e *env, db, dest string, sf *storeFlags, pf publishFlags) error {
	if err := checkSource(dest); err != nil {
		return err
	}
	if fi, err := os.Stat(db); err != nil {
		return fmt.Errorf("database: %w", err)
	} else if fi.IsDir() {
		return fmt.Errorf("database %s is a directory", db)
	}
	st, err := openStore(ctx, dest, sf, true)
	if err != nil {
		return err
	}
	pp := newProgressPrinter(e.stderr, filepath.Base(db))
	pp.log = e.log
	pp.tty = pp.tty && e.log.format == logPlain
	// A failure that repeats at every tick (a store that is down) prints
	// when it starts, when it ends, and every 5 minutes in between.
	fails := &failurePrinter{w: e.stderr, prefix: "walrust publish: ", now: time.Now, log: e.log}
	pub, err := publish.New(db, st, publish.Options{
		WorkDir:          pf.workDir,
		Progress:         pp.report,
		OnPublish:        func(r publish.Result) { printResult(e, r, pf.retention) },
		OnError:          fails.failed,
		OnRecover:        fails.recovered,
		SnapshotInterval: pf.snapshotInterval,
		Retention:        pf.retention,
		NewLineage:       pf.newLineage,
	})
	if err != nil {
		return err
	}
	if pf.interval == 0 {
		res, err := pub.PublishOnce(ctx)
		if err != nil {
			return errors.Join(err, pub.Close())
		}
		switch {
		case res.Empty:
			e.log.line(e.stdout, slog.LevelInfo, fmt.Sprintf("Nothing to publish: %s is empty", db))
		case !res.Changed:
			e.log.line(e.stdout, slog.LevelInfo, fmt.Sprintf("No changes: TXID %d is published", res.TXID), "txid", uint64(res.TXID))
		}
		printResult(e, res, pf.retention)
		// What was published stands; the upkeep that failed is tried again
		// at the next run, which a non-zero exit asks for.
		return errors.Join(res.UpkeepErr, pub.Close())
	}

	// The first SIGINT/SIGTERM ends Run after the file in hand; stop()
	// restores the default, so a second one ends the process at once.
	sigCtx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-sigCtx.Done()
		stop()
	}()
	e.log.line(e.stderr, slog.LevelInfo, fmt.Sprintf("Publishing %s to %s every %s (Ctrl-C to stop)", db, st, pf.interval), "dest", fmt.Sprint(st), "interval", pf.interval)
	err = pub.Run(sigCtx, pf.interval)
	return errors.Join(err, pub.Close())
}

// printResult prints one line per published file and one per retention
// pass that deleted files.
func printResult(e *env, r publish.Result, retention time.Duration) {
	if r.Changed {
		kind, why := "", ""
		if r.Snapshot {
			kind = "snapshot "
			why = " (" + r.Reason + ")"
		} else if r.Compared != "" {
			why = " (compared in full: " + r.Compared + ")"
		}
		e.log.line(e.stdout, slog.LevelInfo, fmt.Sprintf("Published %s%s (%s, %s) TXID %d%s",
			kind, r.File.Name(), plural(r.Pages, "page", "pages"), formatBytes(r.File.Size), r.TXID, why),
			"file", r.File.Name(), "snapshot", r.Snapshot, "pages", r.Pages, "bytes", r.File.Size, "txid", uint64(r.TXID))
	}
	if s := r.Periodic; s != nil {
		e.log.line(e.stdout, slog.LevelInfo, fmt.Sprintf("Published snapshot %s (%s, %s) TXID %d (periodic: %s)",
			s.File.Name(), plural(s.Pages, "page", "pages"), formatBytes(s.File.Size), s.File.MaxTXID, s.Reason),
			"file", s.File.Name(), "snapshot", true, "pages", s.Pages, "bytes", s.File.Size, "txid", uint64(s.File.MaxTXID))
	}
	if p := r.Retention; p != nil {
		e.log.line(e.stdout, slog.LevelInfo, fmt.Sprintf("Deleted %s covered by snapshot %s (older than %s)",
			plural(p.Deleted, "file", "files"), p.Cover.Name(), formatDuration(retention)),
			"deleted", p.Deleted, "file", p.Cover.Name())
	}
}
