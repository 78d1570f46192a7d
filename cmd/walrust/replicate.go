package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/walrust/walrust/vfs/follow"
	"github.com/walrust/walrust/vfs/store"
)

var replicateCommand = &command{
	name:    "replicate",
	args:    "SOURCE --local DB",
	summary: "follow a store into a local read replica, until interrupted",
	nargs:   anyArgs, // checked by the command, for clearer messages
	about: `
Keeps the SQLite database file DB (--local) a read replica of the store
SOURCE, without any SQLite client: the first run downloads the newest
snapshot, then walrust polls the store every --interval and applies each new
LTX file as it lands (every file is verified first), one line per file. Idle
polls print nothing; errors are printed on stderr when they start and when
they clear. A store that cannot be reached (a server or network outage, also
at start) is retried at every poll; a source that is wrong (a missing bucket
or directory, denied access) ends the run with an error at start.

SOURCE is file:///absolute/dir (a Litestream file replica) or
s3://bucket/prefix; S3 options come from the flags, the URL parameters
endpoint=, region= and path_style=, or the usual AWS environment variables.

It runs until SIGINT or SIGTERM, lets the file in hand finish and exits 0 (a
second signal stops it at once; nothing is lost either way). The next run
resumes from the replica's TXID without downloading the snapshot again. When
no chain of files leads from the replica to the store's newest TXID (the
store's retention removed files it had not seen, or the primary started over
from a new snapshot), it re-bootstraps from the newest snapshot by itself.

Other processes may read DB while it runs: walrust writes into DB under
SQLite's own file locks, so a plain SQLite client sees one consistent TXID
per read transaction and the file advancing as files are applied, e.g.

    sqlite3 'file:DB?mode=ro' 'SELECT count(*) FROM t'

and so do programs that open it through the walrust extension or VFS
(file:DB?vfs=walrust): one process at a time follows a replica (it holds
DB-replica-lock), the others read what it applies. If another process
follows DB already, walrust replicate waits and takes over when it stops.

Next to DB it keeps DB-replica-state (the source, TXID and checksum it holds)
and DB-replica-log/ (files applied but not folded into DB yet). A DB that
exists without DB-replica-state was not made by walrust and is never
overwritten; one that follows another source is refused.

With --config FILE, one process follows every replica a YAML file lists:

    interval: 1s               # defaults; every entry may override them
    metrics-addr: 127.0.0.1:9090
    replicas:
      - source: s3://bucket/app
        local: /data/app.db    # relative paths: from the file's directory
      - source: file:///srv/ltx/billing
        local: billing.db
        interval: 5s
      - discover: s3://bucket/tenants/   # every database under the prefix,
        local-dir: /data/tenants         # into /data/tenants/<name>.db

Keys, at the top or per entry: interval, max-interval, max-size, endpoint,
region, path-style, discover-every (how often a discover entry lists its
prefix again; default 1m); at the top only: metrics-addr, max-lag. Unknown
keys are errors. Each line printed starts with the replica's local path; an
entry that cannot start shows its error (and in /healthz) and is retried,
without stopping the others. SIGHUP reads the file again: new entries start,
removed ones stop cleanly, the others go on.

Under systemd or in a container, --log-format text puts a time and a level
before each line, --log-format json writes one JSON object per line (time,
level, msg, db, txid, file, pages, err ...), and --quiet leaves out the line
per applied file for a summary every --summary-every (default 1m).

Set WALRUST_LOG=debug (or info) for a log of the follower on stderr.`,
}

func init() {
	replicateCommand.flags = func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
		var sf storeFlags
		local := fs.String("local", "", "the local replica `DB` file (required)")
		interval := new(time.Duration)
		durationVar(fs, interval, "interval", 5*time.Second, "poll the store every `DURATION`: 500ms, 1s, 5m (default 5s)")
		var maxInterval time.Duration
		durationVar(fs, &maxInterval, "max-interval", 0, "let idle polls back off, doubling the wait up to `DURATION`; the first change snaps back to --interval (default: no back-off)")
		metricsAddr := fs.String("metrics-addr", "", "serve Prometheus metrics on http://`ADDR`/metrics and a health check on /healthz (e.g. 127.0.0.1:9090)")
		maxLag := new(time.Duration)
		durationVar(fs, maxLag, "max-lag", time.Minute, "/healthz answers 503 when the replica was not confirmed current within `DURATION` (default 1m)")
		var maxSize int64
		fs.Func("max-size", "refuse LTX files that describe a database larger than `SIZE`: 500GB, 2TiB (default 1TiB)", func(s string) error {
			n, err := follow.ParseSize(s)
			maxSize = n
			return err
		})
		bootstrap := fs.String("bootstrap", "", "how a new replica gets its snapshot, `MODE`: full (download, verify, then install; the default) or lazy (read by range and stream; the file appears once hydrated and verified, so here only the progress output differs)")
		config := fs.String("config", "", "follow every replica a YAML `FILE` lists (see below); SIGHUP reads it again")
		sf.register(fs)
		var lo logOpts
		lo.register(fs, true)
		return func(ctx context.Context, e *env, args []string) error {
			if *config != "" {
				var other []string
				fs.Visit(func(f *flag.Flag) {
					switch f.Name {
					case "config", "log-format", "quiet", "summary-every":
					default:
						other = append(other, "--"+f.Name)
					}
				})
				switch {
				case len(args) > 0:
					return usagef("--config takes no SOURCE: the file lists the sources (got %s)", strings.Join(args, " "))
				case len(other) > 0:
					return usagef("--config: put %s in the file (every key may be set at the top, for all entries)", strings.Join(other, ", "))
				}
				return runFleet(ctx, e, *config, lo)
			}
			switch {
			case len(args) == 0:
				return usagef("missing SOURCE (file:///absolute/dir or s3://bucket/prefix)")
			case len(args) > 1:
				return usagef("want one SOURCE, got %d arguments: %s", len(args), strings.Join(args, " "))
			case *local == "":
				return usagef("missing --local DB: the replica file to keep")
			case *interval < follow.MinInterval:
				return usagef("--interval %s: must be at least %s", *interval, follow.MinInterval)
			case maxInterval < 0:
				return usagef("--max-interval %s: must not be negative", maxInterval)
			case maxInterval != 0 && maxInterval <= *interval:
				return usagef("--max-interval %s: must be longer than --interval %s, which idle polls back off from (leave it out for no back-off)", maxInterval, *interval)
			case lo.summaryEvery < 0:
				return usagef("--summary-every %s: must not be negative", lo.summaryEvery)
			case *maxLag < 0:
				return usagef("--max-lag %s: must not be negative", *maxLag)
			case follow.CheckBootstrap(*bootstrap) != nil:
				return usagef("--bootstrap %q: want %s or %s", *bootstrap, follow.BootstrapFull, follow.BootstrapLazy)
			}
			e.log = newLineLog(lo.format, "cmd", "replicate", "db", *local)
			return runReplicate(ctx, e, args[0], *local, &sf, replicateOpts{interval: *interval, maxInterval: maxInterval, maxSize: maxSize, bootstrap: *bootstrap, metricsAddr: *metricsAddr, maxLag: *maxLag, log: lo})
		}
	}
}

// replicateOpts are walrust replicate's flags beyond the source, the
// local file and the store's.
type replicateOpts struct {
	interval, maxInterval time.Duration
	maxSize               int64
	bootstrap             string
	metricsAddr           string
	maxLag                time.Duration
	log                   logOpts
}

func runReplicate(ctx context.Context, e *env, source, local string, sf *storeFlags, o replicateOpts) error {
	interval := o.interval
	if err := checkSource(source); err != nil {
		return err
	}
	source = store.Canonical(source)
	if fi, err := os.Stat(local); err == nil && fi.IsDir() {
		return fmt.Errorf("--local %s is a directory, not a database file", local)
	}

	// The first SIGINT/SIGTERM stops the follower after the file in hand;
	// stop() restores the default, so a second one ends the process at once.
	sigCtx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	// follow.Lead opens the store of a new replica before anything is
	// written, so that a mistyped source leaves nothing behind; a store
	// that does not answer yet (a server or network outage) is waited for,
	// as a headless follower should. While another process follows the
	// replica (it holds DB-replica-lock: a walrust replicate, or a program
	// that opened it through the VFS), it waits and takes over when that
	// process stops.
	p := newReplicatePrinter(e.stdout, e.stderr, local, interval)
	p.setLog(o.log.format, o.log.quiet, o.log.summary())
	// The metrics address is taken first, so that a bad or busy one ends
	// the run at start, not after a bootstrap; until this process follows,
	// the replica reads as not current (/healthz 503).
	var following atomic.Pointer[follow.Follower]
	if o.metricsAddr != "" {
		ops, err := startOps(o.metricsAddr, o.maxLag, func() []followed {
			return []followed{{db: local, status: func() follow.Status {
				if f := following.Load(); f != nil {
					return f.Status()
				}
				return follow.Status{Source: source, Path: local, LastError: "not following yet: bootstrapping, or waiting for the process that follows it to stop"}
			}}}
		})
		if err != nil {
			return err
		}
		defer ops.close()
		p.info(fmt.Sprintf("Serving metrics on %s/metrics, health on %s/healthz", ops.URL(), ops.URL()), "addr", ops.URL())
	}
	h, err := follow.Lead(sigCtx, local, follow.Config{
		Source:      source,
		CheckStore:  true, // a wrong source ends the run at start
		Interval:    interval,
		MaxInterval: o.maxInterval,
		MaxSize:     o.maxSize,
		Bootstrap:   o.bootstrap,
		Store:       sf.options(),
		Logger:      followerLogger(os.Getenv("WALRUST_LOG"), p.log),
		OnEvent:     p.event,
	}, func() time.Duration { return min(interval, time.Second) }, func(bool) { p.waiting() })
	switch {
	case errors.Is(err, context.Canceled) && sigCtx.Err() != nil:
		p.info(fmt.Sprintf("Stopped while another process followed %s", local))
		return nil
	case err != nil:
		return err
	}
	r := h.Replica
	f := h.Follower
	following.Store(f)

	// The follower reports what it does through events; whether a poll
	// succeeded (the end of an error, the first poll done) only through
	// its status, which this loop watches.
	ticker := time.NewTicker(statusEvery)
	defer ticker.Stop()
	for running := true; running; {
		select {
		case <-sigCtx.Done():
			running = false
		case <-ticker.C:
			p.status(f.Status(), r.Head() != nil)
		}
	}
	stop()

	slow := time.AfterFunc(time.Second, func() {
		p.notice("Finishing the file in hand (interrupt again to stop at once)...")
	})
	f.Close()
	slow.Stop()
	if v := r.Head(); v != nil {
		p.info(fmt.Sprintf("Stopped at TXID %d (%s)", uint64(v.TXID), local), "txid", uint64(v.TXID))
	} else {
		p.info(fmt.Sprintf("Stopped before any snapshot was installed (%s)", local))
	}
	// A follower folds after each poll, so the fold in Close only matters
	// when the signal came in the middle of one; the next run would fold
	// it too.
	return h.Close()
}

// statusEvery is how often the command looks at the follower's status.
const statusEvery = 100 * time.Millisecond

// followerLogger is the follower's own log on stderr at WALRUST_LOG's level,
// in the format of the command's lines (json, or slog's text); by default
// it is off, since the command prints every event itself.
func followerLogger(level string, ll *lineLog) *slog.Logger {
	if level == "" {
		return nil
	}
	var l slog.Level
	bad := l.UnmarshalText([]byte(level)) != nil
	if bad {
		l = slog.LevelInfo
	}
	lg := slog.New(ll.handler(os.Stderr, l)).With("component", "walrust")
	if bad {
		lg.Warn(fmt.Sprintf("WALRUST_LOG=%q: want debug, info, warn or error; logging at info", level))
	}
	return lg
}
