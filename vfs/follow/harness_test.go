package follow

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/replica"
	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/testtool"
	"github.com/walrust/walrust/vfs/testkit/worldtest"
)

// world is one test's store, reference database and replica path
// (worldtest), with what this package's tests do to follow it.
type world struct{ *worldtest.World }

func newWorld(t testing.TB, pageSize int, noChecksum bool) *world {
	t.Helper()
	return &world{worldtest.New(t, worldtest.Options{PageSize: pageSize, NoChecksum: noChecksum})}
}

func (w *world) openReplica() *replica.Replica {
	w.T.Helper()
	r, err := replica.Open(w.Path, w.Source)
	if err != nil {
		w.T.Fatal(err)
	}
	return r
}

// bootstrapped publishes the current image as a snapshot and returns a
// replica bootstrapped from it by a manual follower (the replica is closed
// at cleanup).
func (w *world) bootstrapped() (*replica.Replica, *Follower) {
	w.T.Helper()
	w.Snapshot()
	r := w.openReplica()
	w.T.Cleanup(func() { r.Close() })
	f := w.manual(r)
	mustStep(w.T, f)
	return r, f
}

// manual is a Follower driven step by step from the test goroutine, so that
// what it has applied at each check is exact (no goroutine, no interval).
func (w *world) manual(r *replica.Replica) *Follower {
	return newFollower(r, w.Store, Options{Interval: time.Hour, Logger: slog.New(slog.NewTextHandler(w.Logs, nil))})
}

// follow starts a real Follower (its own goroutine) and stops it at cleanup.
func (w *world) follow(r *replica.Replica, st store.Reader) *Follower {
	f := Follow(r, st, Options{Interval: 5 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(w.Logs, nil))})
	w.T.Cleanup(f.Close)
	return f
}

func step(t testing.TB, f *Follower) error {
	t.Helper()
	return f.step(context.Background())
}

func mustStep(t testing.TB, f *Follower) {
	t.Helper()
	if err := step(t, f); err != nil {
		t.Fatalf("step: %v", err)
	}
}

// waitTXID waits until the replica's head is txid.
func waitTXID(t testing.TB, r *replica.Replica, f *Follower, txid ltx.TXID) {
	t.Helper()
	testtool.Eventually(t, fmt.Sprintf("TXID %d", txid), 15*time.Second, func() error {
		if h := r.Head(); h == nil {
			return fmt.Errorf("no version yet; follower status: %+v", f.Status())
		} else if h.TXID != txid {
			return fmt.Errorf("replica at TXID %d; follower status: %+v", h.TXID, f.Status())
		}
		return nil
	})
}

// checkVersion compares a version with a database image (worldtest.CheckServed).
func checkVersion(t testing.TB, v *replica.Version, img []byte, what string) {
	t.Helper()
	worldtest.CheckServed(t, v, worldtest.Header{TXID: v.TXID, Counter: v.Counter, Commit: v.Commit, PageSize: v.PageSize}, img, what)
}

// checkHead pins the head, checks it is txid and equals its image.
func (w *world) checkHead(r *replica.Replica, txid ltx.TXID, what string) {
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
// plain sqlite3 process would read it.
func (w *world) checkBase(txid ltx.TXID, what string) {
	w.T.Helper()
	st, err := replica.ReadState(w.Path)
	if err != nil || st == nil {
		w.T.Fatalf("%s: state: %v", what, err)
	}
	if st.TXID != txid {
		w.T.Fatalf("%s: state file at TXID %d, want %d", what, st.TXID, txid)
	}
	worldtest.CheckBaseFile(w.T, w.Path, w.Image(txid), w.Pub.PageSize, st.Counter, what)
}

// logDir is where the replica at path keeps the files it applied but has
// not folded yet.
func logDir(path string) string { return path + "-replica-log" }

// segments counts the files in the replica's log directory.
func segments(t testing.TB, r *replica.Replica) int {
	t.Helper()
	entries, err := os.ReadDir(logDir(r.Path()))
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// logContains says whether a follower's log has s in it.
func logContains(l *testtool.Buffer, s string) bool { return strings.Contains(l.String(), s) }

// applyFile applies an LTX file under the name its own header gives,
// without the follower.
func applyFile(r *replica.Replica, data []byte) (*replica.Version, error) {
	return r.Apply(context.Background(), bytes.NewReader(data), worldtest.WantOf(data, false))
}
