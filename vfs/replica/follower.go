package replica

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/superfly/ltx"
	"github.com/walrust/walrust/vfs/internal/ltxguard"
	"github.com/walrust/walrust/vfs/store"
)

// Follower keeps one Replica up to date with one store: it bootstraps the
// replica from the newest snapshot, then polls, applying each new LTX file
// in TXID order, and folds what readers no longer need.
type Follower struct {
	r        *Replica
	st       store.Reader
	interval time.Duration
	maxSize  int64 // the largest database a file may describe
	maxHeld  int64 // what readers may keep in the log; 0: see heldLimit
	log      *slog.Logger
	onEvent  func(Event)

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

	mu     sync.Mutex
	status Status
	ready  chan struct{} // closed once the replica has a version
	// failed is closed when a poll fails, before the replica has a
	// version, with an error no retry cures (store.IsPermanent: access
	// denied, a missing bucket). An open waiting in WaitReady then fails
	// at once, naming it, instead of after its whole timeout.
	failed chan struct{}

	cancel context.CancelFunc
	done   chan struct{}
}

// Status is what PRAGMA walrust_status reports.
type Status struct {
	Source       string      `json:"source"`
	Path         string      `json:"path"`
	TXID         ltx.TXID    `json:"txid"`
	Timestamp    time.Time   `json:"timestamp"`
	LagSeconds   float64     `json:"lag_seconds"`
	LastPoll     time.Time   `json:"last_poll"`
	LastError    string      `json:"last_error"`
	FilesApplied int64       `json:"files_applied"`
	Bootstraps   int64       `json:"bootstraps"`
	Interval     string      `json:"interval"`
	Store        store.Stats `json:"store"`
}

// Options configure a Follower.
type Options struct {
	Interval time.Duration // between polls
	// MaxSize bounds the database any file may describe (commit × page
	// size); 0 means DefaultMaxSize. A larger one is rejected unread.
	MaxSize int64
	// MaxHeld bounds what the log may hold for versions that readers keep
	// from being folded; past it, the oldest such reader expires. 0: the
	// larger of DefaultMaxHeld and the database's size.
	MaxHeld int64
	Logger  *slog.Logger // nil: discard
	// OnEvent, if set, is called from the follower's goroutine for each
	// thing it does (the command line prints them); it must not block long.
	OnEvent func(Event)
	// StoreErr is why st could not be opened yet, if it could not (st
	// opens itself at the polls): the status shows it until the first
	// poll says more.
	StoreErr error
}

// Follow starts following st into r in a goroutine; Close stops it.
func Follow(r *Replica, st store.Reader, opts Options) *Follower {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Follower{
		r: r, st: st, interval: opts.Interval, maxSize: cmp.Or(opts.MaxSize, DefaultMaxSize), maxHeld: opts.MaxHeld, log: log.With("db", r.path), onEvent: opts.OnEvent,
		bad: make(map[store.FileKey]badFile), ready: make(chan struct{}), failed: make(chan struct{}),
		cancel: cancel, done: make(chan struct{}),
	}
	f.status.Source, f.status.Path, f.status.Interval = st.String(), r.path, opts.Interval.String()
	if opts.StoreErr != nil {
		f.status.LastError = opts.StoreErr.Error()
	}
	if err := r.openFoldErr; err != nil {
		f.log.Warn("cannot fold the log into the file yet; serving it from the log, and folding again after each poll", "err", err)
	}
	go f.run(ctx)
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
		s.LagSeconds = time.Since(h.Timestamp).Seconds()
	}
	s.Store = f.st.Stats()
	return s
}

func (f *Follower) run(ctx context.Context) {
	defer close(f.done)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
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
			f.status.LastError = ""
		}
		f.mu.Unlock()
		if err != nil {
			f.log.Warn("poll failed", "err", err)
			f.emit(Event{Kind: EventError, Err: err})
			if store.IsPermanent(err) {
				f.markFailed() // after LastError is set: WaitReady reports it
			}
		}
		timer.Reset(f.interval)
	}
}

func (f *Follower) step(ctx context.Context) error {
	var err error
	held, limit := f.r.HeldBytes(), f.heldLimit()
	switch {
	case f.r.Head() == nil:
		err = f.bootstrap(ctx)
	case held > limit:
		// Past max_held with the fold still kept back after the last
		// poll expired what it could in this process: the reader is in
		// another process, holding SQLite's lock on the file, and cannot
		// be expired from here. Applying more would grow the log without
		// bound; the replica waits for it instead, and says so.
		err = fmt.Errorf("holding back: %d bytes of applied files wait to be folded, past max_held (%d bytes), because a reader in another process keeps the file locked (SQLite's shared lock); new files are applied once it ends", held, limit)
	case !f.started:
		err = f.catchUp(ctx)
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

// pollOnce is the steady state: one LIST of L0 from the head on. New files
// that continue the head are applied in order; anything else (a gap left by
// retention, a file that cannot follow) hands over to catchUp.
//
// The listing starts at the head's own TXID, which costs nothing more: a
// store keeps the L0 file of its newest TXID (Litestream deletes an L0 file
// only once newer ones exist: db.go EnforceL0RetentionByTime keeps the
// last), so when the file named for the head has been seen, and is gone
// with nothing newer, the store has lost its head: it was wiped and
// started again from TXID 1 (Litestream does when both its local state and
// the store are empty). catchUp then finds the store behind the replica.
// Without this, the replica would wait for the new lineage to pass its TXID
// and then apply its files on top of the old content.
func (f *Follower) pollOnce(ctx context.Context) error {
	head := f.r.Head()
	listed, err := f.st.ListAfter(ctx, 0, head.TXID-1)
	if err != nil {
		return fmt.Errorf("poll: %w", err)
	}
	sawHead := false
	var files []store.FileInfo
	for _, fi := range listed {
		if fi.MinTXID > head.TXID {
			files = append(files, fi)
		} else if fi.MinTXID == head.TXID && fi.MaxTXID == head.TXID {
			sawHead = true
		}
	}
	if len(files) == 0 {
		if sawHead {
			f.headFile = head.TXID
			return nil
		}
		if f.headFile == head.TXID {
			// Lost, and it stays lost for every poll until the store
			// moves past the head or shows a new lineage's snapshot: a
			// wipe deletes level by level, so the full listing of one
			// poll may still find the head in L1 while the next finds
			// nothing at all.
			if f.lostWarned != head.TXID {
				f.lostWarned = head.TXID
				f.log.Warn("the store no longer has the replica's newest file, nor any newer one; listing every level", "txid", head.TXID)
			}
			return f.catchUp(ctx)
		}
		return nil
	}
	// The run of files that continue the head one TXID at a time.
	next := head.TXID + 1
	run := files
	for i, fi := range files {
		if c, ok := f.broken[fi.Key()]; fi.MinTXID != next || f.rejected(fi) != nil || (ok && c == head.Counter) {
			run = files[:i]
			break
		}
		next = fi.MaxTXID + 1
	}
	if err := f.applyAll(ctx, run); err != nil {
		if errors.Is(err, ErrChainBroken) {
			return f.catchUp(ctx)
		}
		return err
	}
	if len(run) < len(files) {
		return f.catchUp(ctx)
	}
	if last := run[len(run)-1]; last.MinTXID == last.MaxTXID {
		f.headFile = last.MaxTXID // listed just now
	}
	return nil
}

// catchUp lists every level and applies the chain that reaches furthest
// from the head. When no chain reaches the store's newest TXID, but the
// newest snapshot leads further than the head can, it re-bootstraps.
func (f *Follower) catchUp(ctx context.Context) error {
	cat, err := listCatalog(ctx, f.st, func(fi store.FileInfo) bool { return f.rejected(fi) != nil })
	if err != nil {
		return fmt.Errorf("list store: %w", err)
	}
	head := f.r.Head()
	if cat.head < head.TXID {
		// The store is behind the replica: it was wiped and a new lineage
		// started from TXID 1. Nothing in it continues the replica; start
		// over from its newest snapshot (the change counter still moves
		// forward, so readers drop their caches).
		snap, err := cat.fromNewestSnapshot()
		if err != nil {
			return fmt.Errorf("the store's newest TXID %s is behind the replica's %s (the store was replaced) and it has no snapshot yet; waiting", cat.head, head.TXID)
		}
		f.log.Warn("the store is behind the replica: a new lineage; re-bootstrapping",
			"txid", head.TXID, "store_head", cat.head, "snapshot", snap.snapshot.String())
		f.emit(Event{Kind: EventRebootstrap, File: *snap.snapshot, TXID: head.TXID})
		return f.follow(ctx, snap)
	}
	p := cat.chainFrom(head.TXID, func(fi store.FileInfo) bool {
		c, ok := f.broken[fi.Key()]
		return ok && c == head.Counter
	})
	if p.reach < cat.head {
		if snap, err := cat.fromNewestSnapshot(); err == nil && snap.reach > p.reach {
			f.log.Warn("no chain of files reaches the store's head; re-bootstrapping",
				"txid", head.TXID, "reachable", p.reach, "store_head", cat.head, "snapshot", snap.snapshot.String())
			f.emit(Event{Kind: EventRebootstrap, File: *snap.snapshot, TXID: head.TXID})
			return f.follow(ctx, snap)
		}
	}
	if err := f.follow(ctx, p); err != nil {
		return err
	}
	if p.reach < cat.head {
		return fmt.Errorf("gap: no file in %s covers TXID %s (the store reaches TXID %s) and no newer snapshot; waiting%s", f.st, p.reach+1, cat.head, f.rejectedCovering(cat, p.reach+1))
	}
	return nil
}

// rejectedCovering names the rejected files that would have covered txid,
// so that the status keeps saying why the replica is stuck.
func (f *Follower) rejectedCovering(cat *catalog, txid ltx.TXID) string {
	var b strings.Builder
	for _, fi := range cat.rejected {
		if fi.MinTXID <= txid && txid <= fi.MaxTXID {
			fmt.Fprintf(&b, "; rejected %s: %v", fi, f.rejected(fi))
		}
	}
	return b.String()
}

// bootstrap fills an empty replica from the newest snapshot and the chain
// after it.
func (f *Follower) bootstrap(ctx context.Context) error {
	cat, err := listCatalog(ctx, f.st, func(fi store.FileInfo) bool { return f.rejected(fi) != nil })
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	p, err := cat.fromNewestSnapshot()
	if err != nil {
		var rejected strings.Builder
		for _, fi := range cat.rejected {
			if fi.Level == store.SnapshotLevel {
				fmt.Fprintf(&rejected, "; rejected %s: %v", fi, f.rejected(fi))
			}
		}
		if rejected.Len() > 0 {
			return fmt.Errorf("bootstrap from %s: no usable snapshot%s", f.st, rejected.String())
		}
		return fmt.Errorf("bootstrap from %s: %w", f.st, err)
	}
	// run marks the follower ready after this step, once the whole plan is
	// applied (or failed part-way with a version to serve), so that an open
	// sees the newest state the store had, not just the snapshot.
	return f.follow(ctx, p)
}

// follow carries out a plan: install its snapshot, if any, then apply its
// steps in order, stopping at the first failure.
func (f *Follower) follow(ctx context.Context, p plan) error {
	if p.snapshot != nil {
		if err := f.installSnapshot(ctx, *p.snapshot); err != nil {
			return err
		}
	}
	return f.applyAll(ctx, p.steps)
}

func (f *Follower) installSnapshot(ctx context.Context, fi store.FileInfo) error {
	start := time.Now()
	f.log.Info("bootstrapping from snapshot", "file", fi.String(), "bytes", fi.Size)
	f.emit(Event{Kind: EventBootstrapStart, File: fi, Bytes: fi.Size})
	rc, err := openFile(ctx, f.st, fi)
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	src := &sourceReader{r: rc}
	staged, err := f.r.StageSnapshot(ctx, &progressReader{r: src, fi: fi, emit: f.emit}, f.want(fi))
	rc.Close()
	if err != nil {
		if src.err != nil || ctx.Err() != nil {
			return fmt.Errorf("bootstrap: download of snapshot %s failed (retrying at the next poll): %w", fi, errors.Join(src.err, ctx.Err()))
		}
		if errors.Is(err, ErrCorrupt) {
			f.reject(fi, err)
			return fmt.Errorf("bootstrap: snapshot %s rejected: %w", fi, err)
		}
		return fmt.Errorf("bootstrap: snapshot %s: %w (retrying)", fi, err)
	}
	if err := f.r.Install(staged); err != nil {
		staged.Discard()
		return fmt.Errorf("bootstrap: %w", err)
	}
	f.mu.Lock()
	f.status.Bootstraps++
	f.status.FilesApplied++
	f.mu.Unlock()
	took := time.Since(start)
	f.log.Info("bootstrapped", "file", fi.String(), "pages", staged.Pages, "txid", staged.Meta.MaxTXID, "took", took.Round(time.Millisecond))
	f.emit(Event{Kind: EventSnapshotInstalled, File: fi, Bytes: fi.Size, Pages: staged.Pages, TXID: staged.Meta.MaxTXID, Took: took})
	return nil
}

// applyAll downloads files (several at a time) and applies them in order.
// A file that fails verification is remembered as bad, so it is neither
// retried nor planned through again; one that cannot follow the head is
// kept out of plans from that head (see broken); an error reading from the
// store is simply retried at the next poll.
func (f *Follower) applyAll(ctx context.Context, files []store.FileInfo) error {
	return fetchInOrder(ctx, f.st, files, func(fi store.FileInfo, rd io.Reader, src *sourceReader) error {
		start := time.Now()
		v, err := f.r.Apply(ctx, rd, f.want(fi))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			switch {
			case src.err != nil: // the store's fault: retry at the next poll
			case errors.Is(err, ErrChainBroken):
				f.chainBroken(fi, err)
			case errors.Is(err, ErrCorrupt):
				f.reject(fi, err)
			default: // a local error (ENOSPC, EMFILE): the file may be fine
				return fmt.Errorf("apply %s: %w (retrying)", fi, err)
			}
			return fmt.Errorf("apply %s: %w", fi, err)
		}
		f.mu.Lock()
		f.status.FilesApplied++
		f.mu.Unlock()
		pages := int(v.seg.meta.PageN)
		f.log.Debug("applied", "file", fi.String(), "txid", v.TXID, "pages", pages)
		f.emit(Event{Kind: EventApplied, File: fi, Bytes: fi.Size, Pages: pages, TXID: v.TXID, Took: time.Since(start)})
		return nil
	})
}

// heldLimit is how much the log may hold for versions that readers keep
// from being folded: Options.MaxHeld, or by default the larger of
// DefaultMaxHeld and the database's size.
func (f *Follower) heldLimit() int64 {
	if f.maxHeld > 0 {
		return f.maxHeld
	}
	if h := f.r.Head(); h != nil {
		return max(DefaultMaxHeld, h.Size())
	}
	return DefaultMaxHeld
}

// DefaultMaxHeld is the least a replica lets readers hold by default.
const DefaultMaxHeld int64 = 1 << 30

// want is what a listed file must be: what its name says, within the
// replica's maximum size.
func (f *Follower) want(fi store.FileInfo) ltxguard.Want {
	return ltxguard.Want{
		MinTXID: fi.MinTXID, MaxTXID: fi.MaxTXID,
		Snapshot: fi.Level == store.SnapshotLevel, MaxSize: f.maxSize, Size: fi.Size,
	}
}

// chainBroken records a file that cannot follow the head: the store's
// lineage changed under the replica (a new snapshot with another page size
// or other content at the same TXIDs). catchUp then re-bootstraps if the
// newest snapshot leads through it.
func (f *Follower) chainBroken(fi store.FileInfo, err error) {
	head := f.r.Head()
	if c, ok := f.broken[fi.Key()]; ok && c != head.Counter {
		f.reject(fi, err) // it follows neither the old chain nor the new one
		return
	}
	if f.broken == nil {
		f.broken = make(map[store.FileKey]uint32)
	}
	f.broken[fi.Key()] = head.Counter
	f.log.Warn("LTX file does not continue the replica; looking for a snapshot of the new lineage", "file", fi.String(), "err", err)
}

// badFile is a rejected file: why, and the ModTime of the copy that failed.
type badFile struct {
	err     error
	modTime time.Time
}

// rejected says why fi was rejected, or nil. A listing that shows another
// ModTime than the copy that failed shows a copy written since, with the
// same name and size (a producer that wrote the file again, a store wiped
// and refilled by a new lineage): that one is tried.
func (f *Follower) rejected(fi store.FileInfo) error {
	b, ok := f.bad[fi.Key()]
	if !ok || (!b.modTime.IsZero() && !fi.ModTime.IsZero() && !b.modTime.Equal(fi.ModTime)) {
		return nil
	}
	return b.err
}

func (f *Follower) reject(fi store.FileInfo, err error) {
	if f.rejected(fi) != nil {
		return
	}
	f.bad[fi.Key()] = badFile{err: err, modTime: fi.ModTime}
	f.log.Error("rejected LTX file; serving the last good state", "file", fi.String(), "err", err)
	f.emit(Event{Kind: EventRejected, File: fi, Err: err})
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
