package follow

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// followWith starts a real Follower of the world's store (through st, if
// set) with opts, after a bootstrap, and stops it at cleanup.
func (w *world) followWith(st store.Reader, opts Options) *Follower {
	w.T.Helper()
	w.Snapshot()
	r := w.openReplica()
	w.T.Cleanup(func() { r.Close() }) // after the follower's Close
	if st == nil {
		st = w.Store
	}
	opts.Logger = slog.New(slog.NewTextHandler(w.Logs, nil))
	f := Follow(r, st, opts)
	w.T.Cleanup(f.Close)
	if err := f.WaitReady(10 * time.Second); err != nil {
		w.T.Fatal(err)
	}
	return f
}

// TestWaitTXIDPollsAtOnce: with an interval of an hour, WaitTXID returns
// once the file is published, because it polls on demand; a TXID never
// published times out saying where the replica is.
func TestWaitTXIDPollsAtOnce(t *testing.T) {
	w := newWorld(t, 4096, true)
	f := w.followWith(nil, Options{Interval: time.Hour})
	w.InsertRows(3, 100)
	txid := w.Commit()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := f.WaitTXID(ctx, txid)
	if err != nil || got != txid {
		t.Fatalf("WaitTXID(%d) = %d, %v", txid, got, err)
	}
	w.checkHead(f.r, txid, "after WaitTXID")

	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = f.WaitTXID(ctx, txid+5)
	if err == nil || !strings.Contains(err.Error(), "replica is at TXID 2") || !strings.Contains(err.Error(), "TXID 7") {
		t.Fatalf("WaitTXID of a TXID never published: %v", err)
	}
}

// TestSyncPollsNow: Sync reaches what the store holds at the call, at an
// interval of an hour.
func TestSyncPollsNow(t *testing.T) {
	w := newWorld(t, 4096, true)
	f := w.followWith(nil, Options{Interval: time.Hour})
	for range 3 {
		w.InsertRows(2, 100)
		w.Commit()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := f.Sync(ctx)
	if err != nil || got != w.Pub.TXID {
		t.Fatalf("Sync = %d, %v; want %d", got, err, w.Pub.TXID)
	}
}

// listCounter counts level-0 listings: one per idle poll.
type listCounter struct {
	store.Reader
	lists atomic.Int64
}

func (c *listCounter) ListAfter(ctx context.Context, level int, after ltx.TXID) ([]store.FileInfo, error) {
	if level == 0 {
		c.lists.Add(1)
	}
	return c.Reader.ListAfter(ctx, level, after)
}

// TestAdaptivePolling: with MaxInterval, an idle follower backs off and
// lists at most a fifth as often as at a fixed interval; a new file is
// still applied within MaxInterval and one poll.
func TestAdaptivePolling(t *testing.T) {
	const interval, maxInterval, window = 5 * time.Millisecond, 200 * time.Millisecond, time.Second
	count := func(opts Options) (*world, *Follower, int64) {
		w := newWorld(t, 4096, true)
		c := &listCounter{Reader: w.Store}
		f := w.followWith(c, opts)
		before := c.lists.Load()
		time.Sleep(window) // the measuring window, not an assertion
		return w, f, c.lists.Load() - before
	}
	_, _, fixed := count(Options{Interval: interval})
	w, f, adaptive := count(Options{Interval: interval, MaxInterval: maxInterval})
	t.Logf("level-0 listings in %s idle: %d at a fixed %s, %d backing off to %s", window, fixed, interval, adaptive, maxInterval)
	if adaptive*5 > fixed {
		t.Errorf("backing off listed %d times, more than a fifth of %d", adaptive, fixed)
	}
	w.InsertRows(1, 10)
	txid := w.Commit()
	start := time.Now()
	waitTXID(t, f.r, f, txid)
	if took := time.Since(start); took > maxInterval+time.Second {
		t.Errorf("a new file took %s to apply after an idle spell; want within max_interval (%s) and a poll", took, maxInterval)
	}
}

// TestSnapshotCheckBounded: an idle follower lists the snapshot level at
// least every SnapshotCheckEvery, so a snapshot published with no level-0 file (a
// primary restored from backup) is found.
func TestSnapshotCheckBounded(t *testing.T) {
	w := newWorld(t, 4096, true)
	f := w.followWith(nil, Options{Interval: 5 * time.Millisecond, SnapshotCheckEvery: 50 * time.Millisecond})
	w.InsertRows(5, 200)
	w.Advance(w.Ref.Image())
	w.InsertRows(5, 200)
	w.Advance(w.Ref.Image())
	w.Snapshot() // TXID 3, and no L0 file says so
	waitTXID(t, f.r, f, 3)
	w.checkHead(f.r, 3, "from the snapshot a full listing found")
	if st := f.Status(); st.SnapshotChecks < 1 || st.FullListings < 2 {
		t.Fatalf("%d snapshot checks, %d full listings; want one check at least, and the full listing it led to", st.SnapshotChecks, st.FullListings)
	}
}

// failingLists fails every listing while failing is set.
type failingLists struct {
	store.Reader
	failing atomic.Bool
}

func (s *failingLists) ListAfter(ctx context.Context, level int, after ltx.TXID) ([]store.FileInfo, error) {
	if s.failing.Load() {
		return nil, errors.New("connection refused")
	}
	return s.Reader.ListAfter(ctx, level, after)
}

// TestFailingPollsLoggedOnce: an outage of many polls is two log lines:
// when it starts, and when it ends with how long and how many polls.
func TestFailingPollsLoggedOnce(t *testing.T) {
	w := newWorld(t, 4096, true)
	st := &failingLists{Reader: w.Store}
	f := w.followWith(st, Options{Interval: 5 * time.Millisecond})
	st.failing.Store(true)
	testtool.Eventually(t, "50 failed polls", 10*time.Second, func() error {
		if !strings.Contains(f.Status().LastError, "connection refused") {
			return errors.New("no failure yet")
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond) // dozens of failing polls
	st.failing.Store(false)
	testtool.Eventually(t, "a poll that succeeds", 10*time.Second, func() error {
		if last := f.Status().LastError; last != "" {
			return errors.New(last)
		}
		return nil
	})
	var lines []string
	for _, l := range strings.Split(w.Logs.String(), "\n") {
		if strings.Contains(l, "poll") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 2 || !strings.Contains(lines[0], "poll failed") || !strings.Contains(lines[1], "polls recovered") || !strings.Contains(lines[1], "failed_polls=") {
		t.Fatalf("log lines about the outage:\n%s", strings.Join(lines, "\n"))
	}
	t.Logf("%s", strings.Join(lines, "\n"))
}
