// Package follow keeps a local replica current with the store it follows:
// it bootstraps it from the newest snapshot, polls for new LTX files, plans
// the chain that reaches furthest, fetches and applies it, and folds. Start
// is the one place where a store, a replica and a follower are put
// together, for the extension and the command line alike. BuildAt uses
// the same plan, fetch and apply to build a replica as of a past point.
package follow

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/replica"
	"github.com/walrust/walrust/vfs/store"
)

// Follower keeps one Replica up to date with one store: it bootstraps the
// replica from the newest snapshot, then polls, applying each new LTX file
// in TXID order, and folds what readers no longer need.
type Follower struct {
	r           *replica.Replica
	st          store.Reader
	interval    time.Duration
	maxInterval time.Duration // idle polls back off up to it; ≤ interval: fixed
	checkEvery  time.Duration // the snapshot level listed at least this often
	maxSize     int64         // the largest database a file may describe
	maxHeld     int64         // what readers may keep in the log; 0: see heldLimit
	log         *slog.Logger
	onEvent     func(Event)

	// The fields down to mu belong to the follower's goroutine (or, in
	// tests, to whoever steps it): no lock.

	// bad holds files that failed verification, with the reason; plans
	// route around them and they are not downloaded again — unless the
	// store shows a copy written since (see rejected).
	bad map[store.FileKey]badFile

	// broken holds files that could not follow the head they were tried on
	// (ErrChainBroken), by that head's change counter. They are kept out of
	// plans from that head only: after a snapshot of a new lineage they may
	// well follow. One that breaks again from another head becomes bad.
	broken map[store.FileKey]uint32

	// started is false until the first successful poll after start, which
	// lists every level instead of only L0, so that a replica that was
	// stopped for longer than L0 retention finds its way through L1+.
	started bool

	// headFile is the head's TXID once a poll has seen the L0 file named
	// for it; see pollOnce. It stays set when that file goes missing, so
	// that a store lost mid-way through a wipe is still known lost.
	headFile ltx.TXID
	// lostWarned is the head TXID for which the loss was logged, so that
	// the polls that keep listing every level do not repeat it.
	lostWarned ltx.TXID
	// modified is set when a fold found the base file changed by
	// something other than walrust: the next step bootstraps again.
	modified bool
	// lastCheck is when a poll last listed the snapshot level (or every
	// level).
	lastCheck time.Time
	// failures keeps a run of failing polls from flooding the log.
	failures failureLog

	// mu guards status, which Status reads from other goroutines. It is
	// held for field updates only, never with a replica lock or across a
	// wait.
	mu       sync.Mutex
	status   Status
	pollDone chan struct{} // closed when the poll under way ends; then replaced
	ready    chan struct{} // closed once the replica has a version
	// failed is closed when a poll fails, before the replica has a
	// version, with an error no retry cures (store.IsPermanent: access
	// denied, a missing bucket). An open waiting in WaitReady then fails
	// at once, naming it, instead of after its whole timeout.
	failed chan struct{}

	// bootMode is BootstrapFull or BootstrapLazy; lazy is a lazy
	// bootstrap under way (lazy.go).
	bootMode string
	lazy     lazyState

	poke   chan struct{} // a poll asked for now (PollNow)
	cancel context.CancelFunc
	done   chan struct{}
}

// Status is what PRAGMA walrust_status reports.
type Status struct {
	Source    string    `json:"source"`
	Path      string    `json:"path"`
	TXID      ltx.TXID  `json:"txid"`
	Timestamp time.Time `json:"timestamp"` // when the primary committed TXID
	// LagSeconds is how long ago the replica was last confirmed current:
	// the start of the last poll that left it at the store's head. On an
	// idle primary it stays near the interval; it grows only while polls
	// fail or fall behind. Before the first such poll, the commit age.
	LagSeconds float64 `json:"lag_seconds"`
	// Current is when the replica was last confirmed current.
	Current time.Time `json:"confirmed_current,omitzero"` // absent: never
	// CommitAgeSeconds is how long ago the primary committed TXID: it
	// grows on an idle primary, whatever the replica does.
	CommitAgeSeconds float64   `json:"commit_age_seconds"`
	LastPoll         time.Time `json:"last_poll,omitzero"` // absent: none by this process
	LastError        string    `json:"last_error"`
	FilesApplied     int64     `json:"files_applied"`
	Polls            int64     `json:"polls"`
	PollErrors       int64     `json:"poll_errors"`
	Bootstraps       int64     `json:"bootstraps"`
	// FullListings counts the polls that listed every level (at start,
	// to bridge a gap, after a new snapshot); SnapshotChecks the idle polls
	// that also listed the snapshot level (at least every
	// SnapshotCheckEvery).
	FullListings   int64       `json:"full_listings"`
	SnapshotChecks int64       `json:"snapshot_checks"`
	Interval       string      `json:"interval"`
	Store          store.Stats `json:"store"`
	// Hydration is a lazy bootstrap's progress while it runs; Hydrated
	// what the last one did, once installed.
	Hydration *replica.HydrationProgress `json:"hydration,omitempty"`
	Hydrated  *replica.HydrationProgress `json:"hydrated,omitempty"`
}

// Options configure a Follower.
type Options struct {
	Interval time.Duration // between polls
	// MaxSize bounds the database any file may describe (commit × page
	// size); 0 means replica.DefaultMaxSize. A larger one is rejected unread.
	MaxSize int64
	// MaxHeld bounds what the log may hold for versions that readers keep
	// from being folded; past it, the oldest such reader expires. 0: the
	// larger of DefaultMaxHeld and the database's size.
	MaxHeld int64
	Logger  *slog.Logger // nil: discard
	// OnEvent, if set, is called from the follower's goroutine for each
	// thing it does (the command line prints them); it must not block long.
	// A lazy bootstrap's EventProgress comes from its stream's goroutine.
	OnEvent func(Event)
	// MaxInterval, if longer than Interval, lets idle polls back off: each
	// poll that finds nothing new doubles the wait, up to MaxInterval; the
	// first change (or failure) snaps it back to Interval.
	MaxInterval time.Duration
	// SnapshotCheckEvery is how often, at the least, a poll lists the
	// snapshot level besides level 0; 0: DefaultSnapshotCheckEvery.
	SnapshotCheckEvery time.Duration
	// Bootstrap is how a new replica gets its snapshot: BootstrapFull
	// (also "") or BootstrapLazy.
	Bootstrap string
	// StoreErr is why st could not be opened yet, if it could not (st
	// opens itself at the polls): the status shows it until the first
	// poll says more.
	StoreErr error
}

// Follow starts following st into r in a goroutine; Close stops it.
func Follow(r *replica.Replica, st store.Reader, opts Options) *Follower {
	f := newFollower(r, st, opts)
	if err := r.OpenModified(); err != nil {
		f.log.Warn("the replica was changed by something other than walrust; bootstrapping it again", "err", err)
	}
	if err := r.OpenFoldErr(); err != nil {
		f.log.Warn("cannot fold the log into the file yet; serving it from the log, and folding again after each poll", "err", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go f.run(ctx)
	return f
}

// newFollower is a Follower that does not run yet: Follow starts it; tests
// step it by hand.
func newFollower(r *replica.Replica, st store.Reader, opts Options) *Follower {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &Follower{
		r: r, st: st, interval: opts.Interval, maxSize: cmp.Or(opts.MaxSize, replica.DefaultMaxSize), maxHeld: opts.MaxHeld, log: log.With("db", r.Path()), onEvent: opts.OnEvent,
		maxInterval: opts.MaxInterval, checkEvery: cmp.Or(opts.SnapshotCheckEvery, DefaultSnapshotCheckEvery),
		bad: make(map[store.FileKey]badFile), ready: make(chan struct{}), failed: make(chan struct{}),
		pollDone: make(chan struct{}), poke: make(chan struct{}, 1),
		cancel: func() {}, done: make(chan struct{}), bootMode: opts.Bootstrap,
	}
	f.status.Source, f.status.Path, f.status.Interval = st.String(), r.Path(), opts.Interval.String()
	if opts.StoreErr != nil {
		f.status.LastError = opts.StoreErr.Error()
	}
	return f
}

// Close stops the follower, letting the file in hand finish or fail cleanly.
func (f *Follower) Close() {
	f.cancel()
	<-f.done
}

// WaitReady waits until the replica has a version to serve (it has been
// bootstrapped), timeout passes, or the store fails in a way no retry
// cures, and then says why not.
func (f *Follower) WaitReady(timeout time.Duration) error {
	return f.WaitReadyFrom(time.Now(), timeout)
}

// WaitReadyFrom is WaitReady for a wait that began earlier: an open's
// timeout counts from the open, which may have spent part of it reaching
// the store before the follower started.
func (f *Follower) WaitReadyFrom(began time.Time, timeout time.Duration) error {
	t := time.NewTimer(time.Until(began.Add(timeout)))
	defer t.Stop()
	select {
	case <-f.ready:
		return nil
	case <-t.C:
	case <-f.done:
	case <-f.failed:
	}
	select {
	case <-f.ready:
		return nil
	default:
	}
	f.mu.Lock()
	last := f.status.LastError
	f.mu.Unlock()
	if last == "" {
		last = "no answer from the store"
	}
	select {
	case <-f.failed:
		return fmt.Errorf("no replica of %s: %s", f.st, last)
	default:
	}
	return fmt.Errorf("no replica of %s after %s: %s", f.st, timeout, last)
}

// Status reports the follower's progress.
func (f *Follower) Status() Status {
	f.mu.Lock()
	s := f.status
	f.mu.Unlock()
	if h := f.r.Head(); h != nil {
		s.TXID, s.Timestamp = h.TXID, h.Timestamp
		s.CommitAgeSeconds = time.Since(h.Timestamp).Seconds()
		s.LagSeconds = s.CommitAgeSeconds
	}
	if !s.Current.IsZero() {
		s.LagSeconds = time.Since(s.Current).Seconds()
	}
	s.Store = f.st.Stats()
	if h := f.lazy.h.Load(); h != nil {
		p := h.Progress()
		s.Hydration = &p
		if rerr := h.Retrying(); rerr != nil && s.LastError == "" {
			s.LastError = fmt.Sprintf("lazy bootstrap: the snapshot's stream failed, starting again: %v", rerr)
		}
	}
	return s
}

func (f *Follower) run(ctx context.Context) {
	defer close(f.done)
	defer f.waitLazy() // ctx has ended: the stream ends too
	start := Event{Kind: EventStart, Err: f.r.OpenModified()}
	if h := f.r.Head(); h != nil {
		start.TXID = h.TXID
	}
	f.emit(start)
	timer := time.NewTimer(0)
	defer timer.Stop()
	wait := f.interval
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-f.poke:
		}
		began, before := time.Now(), f.headTXID()
		err := f.step(ctx)
		if ctx.Err() != nil {
			return
		}
		if f.r.Head() != nil {
			// Ready after the first poll, not before it: an open of a
			// replica that exists sees the store's state as of the open
			// (or, when the store cannot be reached, the last state).
			f.markReady()
		}
		f.mu.Lock()
		f.status.LastPoll = time.Now().UTC()
		if err != nil {
			f.status.LastError = err.Error()
		} else {
			// A poll that succeeded left the replica at the head the store
			// listed when it began (a gap, a rejected file, a held-back
			// apply each fail the poll).
			f.status.LastError = ""
			f.status.Current = began.UTC()
		}
		f.status.Polls++
		if err != nil {
			f.status.PollErrors++
		}
		f.mu.Unlock()
		if err == nil {
			if merr := f.r.MarkCurrent(began); merr != nil {
				f.log.Debug("cannot record the replica current", "err", merr)
			}
		}
		f.failures.note(f.log, err, began)
		if err != nil {
			f.emit(Event{Kind: EventError, Err: err})
			if store.IsPermanent(err) {
				f.markFailed() // after LastError is set: WaitReady reports it
			}
		}
		f.endPoll()
		wait = f.nextWait(wait, f.headTXID() != before, err != nil)
		timer.Reset(wait)
	}
}

func (f *Follower) step(ctx context.Context) error {
	var err error
	held, limit := f.r.HeldBytes(), f.heldLimit()
	if err := f.finishLazy(); err != nil {
		f.started = false
		return err
	}
	switch {
	case f.r.Head() == nil:
		err = f.bootstrap(ctx)
	case f.modified:
		err = f.startOverModified(ctx)
	case held > limit:
		// Past max_held with the fold still kept back after the last
		// poll expired what it could in this process: the reader is in
		// another process, holding SQLite's lock on the file, and cannot
		// be expired from here. Applying more would grow the log without
		// bound; the replica waits for it instead, and says so.
		err = fmt.Errorf("holding back: %d bytes of applied files wait to be folded, past max_held (%d bytes), because a reader in another process keeps the file locked (SQLite's shared lock); new files are applied once it ends", held, limit)
	case !f.started:
		err = f.catchUp(ctx)
	case time.Since(f.lastCheck) >= f.checkEvery:
		err = f.checkSnapshots(ctx)
	default:
		err = f.pollOnce(ctx)
	}
	// A failed poll may have missed files that L0 retention deletes before
	// the store answers again (an outage, an idle primary): the next
	// successful poll lists every level, as after a restart.
	f.started = err == nil
	// Fold after a bootstrap too, so that other processes, which read only
	// the base file, see the chain after the snapshot without waiting a poll.
	if _, ferr := f.r.Fold(); ferr != nil {
		err = errors.Join(err, ferr)
		if errors.Is(ferr, replica.ErrModified) && !f.modified {
			f.modified = true
			f.log.Warn("the replica was changed by something other than walrust; bootstrapping it again (a copy of the changed file is kept)", "err", ferr)
		}
	}
	if aside := f.r.CopiedAside(); aside != "" {
		f.log.Warn("kept a copy of the replica as something other than walrust had changed it", "copy", aside)
	}
	// What a long reader keeps from being folded is merged instead, so
	// that it holds a bounded number of segments; past the limit on what
	// they may hold, the reader expires (expire.go).
	if _, merr := f.r.Merge(); merr != nil {
		err = errors.Join(err, merr)
	}
	limit = f.heldLimit() // the head may have grown
	expired, xerr := f.r.ExpireHeld(limit)
	for _, v := range expired {
		f.log.Warn("a read transaction kept more of the log than a replica may hold; it expired: its reads fail from now on", "txid", v.TXID, "max_held", limit)
	}
	if xerr != nil {
		err = errors.Join(err, xerr)
	}
	return err
}

// markFailed lets WaitReady give up at once, if the replica has no
// version yet; the follower itself keeps retrying.
func (f *Follower) markFailed() {
	select {
	case <-f.ready:
	case <-f.failed:
	default:
		close(f.failed)
	}
}

func (f *Follower) markReady() {
	select {
	case <-f.ready:
	default:
		close(f.ready)
	}
}
