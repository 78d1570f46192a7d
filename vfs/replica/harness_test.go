package replica

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/internal/ltxguard"
	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/testtool"
	"github.com/walrust/walrust/vfs/testkit/worldtest"
)

// world is one test's store, reference database and replica path
// (worldtest), with what this package's tests do to a replica of it.
type world struct{ *worldtest.World }

func newWorld(t testing.TB, pageSize int, noChecksum bool) *world {
	t.Helper()
	return &world{worldtest.New(t, worldtest.Options{PageSize: pageSize, NoChecksum: noChecksum})}
}

func (w *world) openReplica() *Replica {
	w.T.Helper()
	r, err := Open(w.Path, w.Source)
	if err != nil {
		w.T.Fatal(err)
	}
	return r
}

// bootstrapped publishes the current image as a snapshot and returns a
// replica bootstrapped from it by a feeder (the replica is closed at
// cleanup).
func (w *world) bootstrapped() (*Replica, *feeder) {
	w.T.Helper()
	w.Snapshot()
	r := w.openReplica()
	w.T.Cleanup(func() { r.Close() })
	f := w.manual(r)
	mustStep(w.T, f)
	return r, f
}

// manual is a feeder for r, driven step by step from the test goroutine.
func (w *world) manual(r *Replica) *feeder { return &feeder{r: r, st: w.Store} }

// feeder stands in for the follower in this package's tests: each step
// brings the replica to the newest state of the store the simplest way
// (the newest snapshot when the replica is empty, or when no file
// continues it and the snapshot is newer; then each file that continues
// the head, at any level), then folds, merges and expires as the follower
// does after each poll. Planning, rejection and retries are the
// follower's, and tested in vfs/follow.
type feeder struct {
	r       *Replica
	st      store.Reader
	maxHeld int64 // 0: 1 GiB
	expired int   // versions ExpireHeld expired
}

func (f *feeder) step(ctx context.Context) error {
	err := f.catchUp(ctx)
	if _, ferr := f.r.Fold(); ferr != nil {
		err = errors.Join(err, ferr)
	}
	if _, merr := f.r.Merge(); merr != nil {
		err = errors.Join(err, merr)
	}
	limit := f.maxHeld
	if limit == 0 {
		limit = 1 << 30
	}
	expired, xerr := f.r.ExpireHeld(limit)
	f.expired += len(expired)
	return errors.Join(err, xerr)
}

func (f *feeder) catchUp(ctx context.Context) error {
	all, err := store.ListAll(ctx, f.st)
	if err != nil {
		return err
	}
	var snap *store.FileInfo
	next := map[ltx.TXID]store.FileInfo{} // by MinTXID: the one reaching furthest
	for _, fi := range all {
		if fi.Level == store.SnapshotLevel {
			if snap == nil || fi.MaxTXID > snap.MaxTXID {
				snap = &fi
			}
		} else if cur, ok := next[fi.MinTXID]; !ok || fi.MaxTXID > cur.MaxTXID {
			next[fi.MinTXID] = fi
		}
	}
	head := f.r.Head()
	if head == nil && snap == nil {
		return errors.New("no snapshot to bootstrap from")
	}
	if head == nil || (snap != nil && snap.MaxTXID > head.TXID && next[head.TXID+1] == (store.FileInfo{})) {
		rc, err := f.st.Open(ctx, *snap)
		if err != nil {
			return err
		}
		staged, err := f.r.StageSnapshot(ctx, rc, want(*snap))
		rc.Close()
		if err != nil {
			return fmt.Errorf("stage %s: %w", snap, err)
		}
		if err := f.r.Install(staged); err != nil {
			staged.Discard()
			return err
		}
	}
	for {
		fi, ok := next[f.r.Head().TXID+1]
		if !ok {
			return nil
		}
		rc, err := f.st.Open(ctx, fi)
		if err != nil {
			return err
		}
		_, err = f.r.Apply(ctx, rc, want(fi))
		rc.Close()
		if err != nil {
			return fmt.Errorf("apply %s: %w", fi, err)
		}
	}
}

func want(fi store.FileInfo) ltxguard.Want {
	return ltxguard.Want{MinTXID: fi.MinTXID, MaxTXID: fi.MaxTXID, Snapshot: fi.Level == store.SnapshotLevel, Size: fi.Size}
}

// feedEvery runs a feeder in a goroutine until stop is called (at the
// latest when the test ends).
func (w *world) feedEvery(r *Replica, every time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		feedUntil(ctx, &feeder{r: r, st: w.Store}, every, func(err error) { w.Logs.Write([]byte(err.Error() + "\n")) })
	}()
	stop = func() { cancel(); wg.Wait() }
	w.T.Cleanup(stop)
	return stop
}

// feedUntil steps f every interval until ctx ends, passing each error on.
func feedUntil(ctx context.Context, f *feeder, every time.Duration, onErr func(error)) {
	for ctx.Err() == nil {
		if err := f.step(ctx); err != nil && ctx.Err() == nil {
			onErr(err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(every):
		}
	}
}

func step(t testing.TB, f *feeder) error {
	t.Helper()
	return f.step(context.Background())
}

func mustStep(t testing.TB, f *feeder) {
	t.Helper()
	if err := step(t, f); err != nil {
		t.Fatalf("step: %v", err)
	}
}

// waitTXID waits until the replica's head is txid.
func waitTXID(t testing.TB, r *Replica, txid ltx.TXID) {
	t.Helper()
	testtool.Eventually(t, fmt.Sprintf("TXID %d", txid), 15*time.Second, func() error {
		if h := r.Head(); h == nil {
			return errors.New("no version yet")
		} else if h.TXID != txid {
			return fmt.Errorf("replica at TXID %d", h.TXID)
		}
		return nil
	})
}

// checkVersion compares a version with a database image (worldtest.CheckServed).
func checkVersion(t testing.TB, v *Version, img []byte, what string) {
	t.Helper()
	worldtest.CheckServed(t, v, worldtest.Header{TXID: v.TXID, Counter: v.Counter, Commit: v.Commit, PageSize: v.PageSize}, img, what)
}

// checkHead pins the head, checks it is txid and equals its image.
func (w *world) checkHead(r *Replica, txid ltx.TXID, what string) {
	w.T.Helper()
	v, err := r.Pin()
	if err != nil {
		w.T.Fatalf("%s: pin: %v", what, err)
	}
	defer v.Unpin()
	if v.TXID != txid {
		w.T.Fatalf("%s: head TXID %d, want %d", what, v.TXID, txid)
	}
	checkVersion(w.T, v, w.Image(txid), what)
}

// checkBase compares the local file itself with the image at txid, as a
// plain sqlite3 process would read it: after a fold with no reader pinned,
// the file is that TXID, with the served header.
func (w *world) checkBase(txid ltx.TXID, what string) {
	w.T.Helper()
	st, err := ReadState(w.Path)
	if err != nil || st == nil {
		w.T.Fatalf("%s: state: %v", what, err)
	}
	if st.TXID != txid {
		w.T.Fatalf("%s: state file at TXID %d, want %d", what, st.TXID, txid)
	}
	worldtest.CheckBaseFile(w.T, w.Path, w.Image(txid), w.Pub.PageSize, st.Counter, what)
}

// segments counts the segments the replica holds unfolded (several share a
// log file); when it holds none, the files left in its log directory, of
// which there should be none.
func segments(t testing.TB, r *Replica) int {
	t.Helper()
	r.mu.Lock()
	n := 0
	for v := r.head; v != nil && v != r.root; v = v.parent {
		if v.seg != nil && !v.folded {
			n++
		}
	}
	n += len(r.abandoned)
	r.mu.Unlock()
	if n > 0 {
		return n
	}
	entries, err := os.ReadDir(r.logDir)
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// logSegments counts the segments in the log files of a log directory
// (each file read up to its first torn segment).
func logSegments(t testing.TB, dir string) int {
	t.Helper()
	paths, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		segs, _, _ := readLogFile(&logFile{path: p, f: f})
		f.Close()
		n += len(segs)
	}
	return n
}

// applyFile applies an LTX file under the name its own header gives (the
// tests that check names against headers call Apply themselves).
func applyFile(r *Replica, data []byte) (*Version, error) {
	return r.Apply(context.Background(), bytes.NewReader(data), worldtest.WantOf(data, false))
}

// stageFile stages a snapshot under the name its own header gives.
func stageFile(r *Replica, data []byte) (*Staged, error) {
	return r.StageSnapshot(context.Background(), bytes.NewReader(data), worldtest.WantOf(data, true))
}
