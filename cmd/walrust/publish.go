package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
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
Takes a consistent copy of the SQLite database DB (rollback or WAL mode,
through SQLite's online backup API) and writes what changed since the last
publish to DEST, in Litestream v0.5's layout: a snapshot (level 9) the first
time, then one level-0 LTX file per change holding only the changed pages.

DEST is file:///absolute/dir (created if missing) or s3://bucket/prefix.

Without --interval, walrust publishes once and exits. With it, walrust keeps
publishing until SIGINT or SIGTERM, finishes the file in hand and exits 0
(a second signal stops it at once; the next run picks up safely).

The position (last TXID, checksum, a copy of the last published image) is
kept in DB-walrust-publish/ next to the database, so that a restart
continues the TXID sequence. It needs as much disk space as the database.`,
}

func init() {
	publishCommand.flags = func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
		var sf storeFlags
		sf.register(fs)
		interval := fs.Duration("interval", 0, "keep publishing, this often (e.g. 1s); 0: publish once")
		workDir := fs.String("work-dir", "", "`dir` to keep the position in (default DB-walrust-publish)")
		return func(ctx context.Context, e *env, args []string) error {
			if *interval < 0 {
				return usagef("--interval %s: must not be negative", *interval)
			}
			return runPublish(ctx, e, args[0], args[1], &sf, *interval, *workDir)
		}
	}
}

func runPublish(ctx context.Context, e *env, db, dest string, sf *storeFlags, interval time.Duration, workDir string) error {
	if _, err := checkSource(dest); err != nil {
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
	pub, err := publish.New(db, st, publish.Options{
		WorkDir:   workDir,
		Progress:  pp.report,
		OnPublish: func(r publish.Result) { printResult(e, r) },
		OnError:   func(err error) { fmt.Fprintf(e.stderr, "walrust publish: %v\n", err) },
	})
	if err != nil {
		return err
	}
	if interval == 0 {
		res, err := pub.PublishOnce(ctx)
		if err != nil {
			return errors.Join(err, pub.Close())
		}
		switch {
		case res.Changed:
			printResult(e, res)
		case res.Empty:
			fmt.Fprintf(e.stdout, "Nothing to publish: %s is empty\n", db)
		default:
			fmt.Fprintf(e.stdout, "No changes: TXID %d is published\n", res.TXID)
		}
		return pub.Close()
	}

	// The first SIGINT/SIGTERM ends Run after the file in hand; stop()
	// restores the default, so a second one ends the process at once.
	sigCtx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-sigCtx.Done()
		stop()
	}()
	fmt.Fprintf(e.stderr, "Publishing %s to %s every %s (Ctrl-C to stop)\n", db, st, interval)
	err = pub.Run(sigCtx, interval)
	return errors.Join(err, pub.Close())
}

// printResult prints one line per published file.
func printResult(e *env, r publish.Result) {
	kind, why := "", ""
	if r.Snapshot {
		kind = "snapshot "
		why = " (" + r.Reason + ")"
	}
	fmt.Fprintf(e.stdout, "Published %s%s (%s, %s) TXID %d%s\n",
		kind, r.File.Name(), plural(r.Pages, "page", "pages"), formatBytes(r.File.Size), r.TXID, why)
}
