package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/walrust/walrust/vfs/follow"
	"github.com/walrust/walrust/vfs/publish"
	"github.com/walrust/walrust/vfs/replica"
)

var promoteCommand = &command{
	name:    "promote",
	args:    "DB",
	summary: "turn a replica into the new primary's database (disaster recovery)",
	nargs:   1,
	about: `
Turns the replica DB into a plain, writable SQLite database: the primary's
own file at the newest TXID the store holds, for when the primary is lost.

walrust first takes the replica over: if a process follows it (walrust
replicate, or an application that opened it through the extension), promote
refuses and names it, unless --force, which stops that process (SIGTERM) and
waits for it. Then it catches up with the store (polling until it holds the
store's newest TXID; --no-catch-up promotes what the replica holds, without
asking the store), folds everything into the file, gives page 1 back the
header the primary wrote (WAL mode comes back if the primary used it),
checks the database checksum and PRAGMA integrity_check, and removes
walrust's files next to DB (DB-replica-state, DB-replica-log/,
DB-replica-lock). An interrupted promotion is finished by running promote
again.

It also prepares DB-walrust-publish/ (or --work-dir) so that

    walrust publish DB SOURCE

continues the store's lineage: its first file is the store's TXID + 1, and
every other replica of SOURCE follows the new primary without starting
over. If the store has moved on meanwhile (the old primary still
publishes), that publish refuses rather than fork the history; stop the old
primary and promote again, or publish with --new-lineage.`,
}

func init() {
	promoteCommand.flags = func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
		var o promoteOpts
		var sf storeFlags
		fs.BoolVar(&o.force, "force", false, "stop the process that follows DB (SIGTERM) and take over")
		fs.BoolVar(&o.noCatchUp, "no-catch-up", false, "promote the TXID the replica holds, without asking the store")
		fs.DurationVar(&o.timeout, "timeout", time.Minute, "give up catching up, or waiting for --force's process to stop, after `D`")
		fs.StringVar(&o.workDir, "work-dir", "", "`dir` to prepare for walrust publish (default DB-walrust-publish)")
		sf.register(fs)
		return func(ctx context.Context, e *env, args []string) error {
			if o.timeout <= 0 {
				return usagef("--timeout %s: must be positive", o.timeout)
			}
			o.store = sf
			return runPromote(ctx, e, args[0], o)
		}
	}
}

type promoteOpts struct {
	force, noCatchUp bool
	timeout          time.Duration
	workDir          string
	store            storeFlags
}

func runPromote(ctx context.Context, e *env, db string, o promoteOpts) error {
	if done, err := replica.ResumePromote(db); err != nil {
		return err
	} else if done {
		fmt.Fprintf(e.stdout, "Finished the promotion of %s that was interrupted: it is a plain SQLite database now\n", db)
		return nil
	}
	st, err := replica.ReadState(db)
	if err != nil {
		return err
	}
	if st == nil || st.TXID == 0 {
		return fmt.Errorf("%s is not a walrust replica (there is no %s-replica-state)", db, db)
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	r, err := takeOver(ctx, e, db, o)
	if err != nil {
		return err
	}
	ex, err := promoteReplica(ctx, r, db, o)
	if err != nil {
		r.Close()
		os.Remove(replica.PromotedPath(db))
		return err
	}
	if err := r.Promote(); err != nil {
		return err
	}
	mode := "rollback-journal mode"
	if ex.WAL {
		mode = "WAL mode"
	}
	fmt.Fprintf(e.stdout, "Promoted %s at TXID %d (committed %s; %s, %s): it is a plain SQLite database now.\n",
		db, uint64(ex.TXID), ex.Timestamp.Format(time.RFC3339), formatBytes(int64(ex.PageSize)*int64(ex.Commit)), mode)
	if !ex.HeaderKnown {
		fmt.Fprintf(e.stdout, "Page 1's header as the primary wrote it was not recorded (a replica made by an older walrust): the file is in rollback-journal mode.\n")
	}
	fmt.Fprintf(e.stdout, "To publish it and keep the other replicas following: walrust publish %s %s\n", db, st.Source)
	return nil
}

// takeOver opens db as the replica this process follows: refusing, or
// with --force stopping, a process that follows it. With catch-up it
// follows the store until it holds the store's newest TXID, then stops
// following; the replica stays open, and led by this process.
func takeOver(ctx context.Context, e *env, db string, o promoteOpts) (*replica.Replica, error) {
	if l, err := replica.Inspect(db); err == nil && l.Following {
		if !o.force {
			return nil, fmt.Errorf("%s is followed by process %d (walrust replicate, or an application that opened it through walrust): stop it first, or pass --force to stop it with SIGTERM", db, l.Follower)
		}
		fmt.Fprintf(e.stdout, "Stopping process %d, which follows %s...\n", l.Follower, db)
		if err := syscall.Kill(l.Follower, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
			return nil, fmt.Errorf("stop process %d: %w", l.Follower, err)
		}
	}
	retry := func() time.Duration { return 100 * time.Millisecond }
	if o.noCatchUp {
		for {
			r, err := replica.Open(db, "")
			if !errors.Is(err, replica.ErrFollowed) {
				return r, err
			}
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("%s: another process still follows it after %s", db, o.timeout)
			case <-time.After(retry()):
			}
		}
	}
	h, err := follow.Lead(ctx, db, follow.Config{Interval: time.Second, CheckStore: true, Store: o.store.options()}, retry, nil)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: another process still follows it after %s", db, o.timeout)
		}
		return nil, err
	}
	txid, err := h.Sync(ctx)
	h.Follower.Close()
	if err != nil {
		h.Replica.Close()
		return nil, fmt.Errorf("catch up with %s: %w; --no-catch-up promotes TXID %d, what the replica holds", h.Source, err, uint64(txid))
	}
	fmt.Fprintf(e.stdout, "Caught up with %s at TXID %d\n", h.Source, uint64(txid))
	return h.Replica, nil
}

// promoteReplica writes the promoted database beside the replica, checks
// it, and prepares the publisher's work directory from it.
func promoteReplica(ctx context.Context, r *replica.Replica, db string, o promoteOpts) (replica.Exported, error) {
	source := r.Source()
	ex, err := r.Export(ctx, replica.PromotedPath(db))
	if err != nil {
		return ex, err
	}
	if err := integrityCheck(ex.Path); err != nil {
		return ex, fmt.Errorf("promote %s at TXID %d: %w", db, uint64(ex.TXID), err)
	}
	err = publish.Adopt(db, publish.Options{WorkDir: o.workDir}, publish.Adopted{
		Store: source, TXID: ex.TXID, Checksum: ex.Checksum, PageSize: ex.PageSize, Commit: ex.Commit, Image: ex.Path,
	})
	return ex, err
}
