package follow

import (
	"context"
	"fmt"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/store"
)

// Freshness on demand: an application that wrote TXID N on the primary
// waits for it here (WaitTXID), or for whatever the store holds now
// (Sync), without waiting for the next tick of a long interval.

// DefaultSnapshotCheckEvery is how often, at the least, an idle poll also
// lists the snapshot level: a store whose head moves only there (a new
// snapshot with no level-0 file: a primary restored from backup, another
// producer) is noticed within it, for one request a minute. (Compactions
// only follow level-0 files, which the poll sees, and Litestream keeps the
// newest level-0 file.)
const DefaultSnapshotCheckEvery = time.Minute

// PollNow asks the follower to poll at once rather than at its next tick.
func (f *Follower) PollNow() {
	select {
	case f.poke <- struct{}{}:
	default: // one is pending already
	}
}

// polled returns a channel closed when the poll under way, or else the
// next one, has ended.
func (f *Follower) polled() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pollDone
}

// endPoll wakes whoever waits for a poll to end.
func (f *Follower) endPoll() {
	f.mu.Lock()
	close(f.pollDone)
	f.pollDone = make(chan struct{})
	f.mu.Unlock()
}

// WaitTXID returns once the replica has applied at least txid, polling at
// once and then again soon after each poll that did not reach it (10 ms,
// doubling up to the interval), until ctx ends; then it says what the
// replica reached and the last poll's error.
func (f *Follower) WaitTXID(ctx context.Context, txid ltx.TXID) (ltx.TXID, error) {
	return f.pollUntil(ctx, func() bool {
		h := f.r.Head()
		return h != nil && h.TXID >= txid
	}, fmt.Sprintf("TXID %d", txid))
}

// Sync polls now and returns once the replica holds everything the store
// held when it was called: once a poll that began after the call has
// confirmed the replica current. It returns the TXID reached.
func (f *Follower) Sync(ctx context.Context) (ltx.TXID, error) {
	called := time.Now()
	return f.pollUntil(ctx, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return !f.status.Current.Before(called)
	}, "the store's head as of the call")
}

func (f *Follower) pollUntil(ctx context.Context, reached func() bool, what string) (ltx.TXID, error) {
	backoff := 10 * time.Millisecond
	for {
		done := f.polled()
		if reached() {
			return f.headTXID(), nil
		}
		f.PollNow()
		select {
		case <-done:
		case <-f.done:
			return f.headTXID(), fmt.Errorf("the replica is closed, at TXID %d", f.headTXID())
		case <-ctx.Done():
			return f.headTXID(), f.notReached(what)
		}
		if reached() {
			return f.headTXID(), nil
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return f.headTXID(), f.notReached(what)
		}
		backoff = min(2*backoff, f.interval)
	}
}

func (f *Follower) notReached(what string) error {
	f.mu.Lock()
	last := f.status.LastError
	f.mu.Unlock()
	if last == "" {
		last = "none: the store has nothing newer yet"
	}
	return fmt.Errorf("timed out waiting for %s: the replica is at TXID %d; last poll error: %s", what, f.headTXID(), last)
}

func (f *Follower) headTXID() ltx.TXID {
	if h := f.r.Head(); h != nil {
		return h.TXID
	}
	return 0
}

// nextWait is how long to wait before the next poll: the interval after a
// poll that changed something or failed, and, with a MaxInterval, twice
// the last wait after each idle one, up to it.
func (f *Follower) nextWait(last time.Duration, changed, failed bool) time.Duration {
	if changed || failed || f.maxInterval <= f.interval {
		return f.interval
	}
	return min(2*max(last, f.interval), f.maxInterval)
}

// failureLog keeps a run of failing polls to a few log lines: one when it
// starts, one every failureRepeat while it lasts, and one when a poll
// succeeds again ("recovered after 15s, 8 polls failed"). Used by the
// follower's goroutine only.
type failureLog struct {
	since  time.Time // the first failure of the run; zero: none
	count  int
	logged time.Time // when the run was last logged
}

// failureRepeat is how often a failure that lasts is logged again.
const failureRepeat = 5 * time.Minute

func (l *failureLog) note(log interface {
	Warn(string, ...any)
	Info(string, ...any)
}, err error, now time.Time) {
	switch {
	case err == nil && l.count > 0:
		log.Warn("polls recovered", "after", now.Sub(l.since).Round(time.Millisecond), "failed_polls", l.count)
		*l = failureLog{}
	case err == nil:
	case l.count == 0:
		log.Warn("poll failed", "err", err, "retry", "at every poll; logged again when it recovers, and every 5m while it lasts")
		l.since, l.count, l.logged = now, 1, now
	default:
		l.count++
		if now.Sub(l.logged) >= failureRepeat {
			log.Warn("polls still failing", "since", now.Sub(l.since).Round(time.Second), "failed_polls", l.count, "err", err)
			l.logged = now
		}
	}
}

// checkSnapshots is an idle poll that also lists the snapshot level: a
// snapshot newer than the head, with nothing at level 0 to announce it,
// makes it list every level and follow the furthest chain (catchUp).
func (f *Follower) checkSnapshots(ctx context.Context) error {
	if err := f.pollOnce(ctx); err != nil {
		return err
	}
	f.lastCheck = time.Now()
	f.mu.Lock()
	f.status.SnapshotChecks++
	f.mu.Unlock()
	snaps, err := f.st.ListAfter(ctx, store.SnapshotLevel, 0)
	if err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	head := f.r.Head()
	for _, s := range snaps {
		if s.MinTXID == 1 && s.MaxTXID > head.TXID && f.rejected(s) == nil {
			f.log.Info("a snapshot is newer than the replica, with no level-0 file after it; listing every level", "snapshot", s.String(), "txid", head.TXID)
			return f.catchUp(ctx)
		}
	}
	return nil
}

// Freshness is what a staleness bound needs, without the whole Status:
// when the replica was last confirmed current (the commit time of its head
// before any poll has; zero before a bootstrap), and the last poll's error.
func (f *Follower) Freshness() (current time.Time, lastErr string) {
	f.mu.Lock()
	current, lastErr = f.status.Current, f.status.LastError
	f.mu.Unlock()
	if h := f.r.Head(); current.IsZero() && h != nil {
		current = h.Timestamp
	}
	return current, lastErr
}
