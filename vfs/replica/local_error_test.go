package replica

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/walrust/walrust/vfs/store"
)

// A fold whose state file cannot be written (a full disk: the base file's
// pages are rewritten in place, which needs no new blocks, but the new state
// file does) must fail before it touches the base file, which readers in
// other processes go on reading at the state's TXID; and the next fold,
// once there is room, must go on, not take the file for one something
// else changed (which re-bootstraps the replica and copies the file
// aside). It wrote the file at the new TXID first: readers in other
// processes were refused (ErrFoldInterrupted) while the disk stayed full,
// and the next fold found a change counter it had not left.
func TestFoldStateWriteFails(t *testing.T) {
	w := newWorld(t, 512, true)
	r, f := w.bootstrapped()
	// One fold first: from it this process knows what the file's header
	// says.
	w.Ref.Insert(20)
	prev := w.Commit()
	mustStep(t, f)
	w.Ref.Insert(20)
	txid := w.Commit()
	if err := f.catchUp(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The state file's temporary copy cannot be created: a local error,
	// as ENOSPC would be.
	tmp := statePath(w.Path) + ".tmp"
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Fold(); err == nil {
		t.Fatal("a fold whose state file cannot be written did not fail")
	} else if t.Logf("fold: %v", err); errors.Is(err, ErrModified) {
		t.Fatalf("the first failure already says modified: %v", err)
	}
	w.checkHead(r, txid, "after the failed fold")
	w.checkBase(prev, "after the failed fold")
	p, err := OpenPassive(w.Path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if v, err := p.Begin(); err != nil {
		t.Fatalf("a reader in another process, after the failed fold: %v", err)
	} else if p.End(); v.TXID != prev {
		t.Fatalf("a reader in another process reads TXID %d, want %d", v.TXID, prev)
	}

	if err := os.Remove(tmp); err != nil {
		t.Fatal(err)
	}
	folded, err := r.Fold()
	if err != nil {
		t.Fatalf("the fold after a failed state write, with room again: %v", err)
	}
	if !folded {
		t.Fatal("nothing folded")
	}
	if p := r.CopiedAside(); p != "" {
		t.Fatalf("the replica was copied aside to %s as if something else had changed it", p)
	}
	w.checkHead(r, txid, "after the fold")
	w.checkBase(txid, "after the fold")
}

// A fold that fails after it marked page 1 (a write or sync of the base
// file fails: EIO, or ENOSPC on a copy-on-write file system, where an
// overwrite needs blocks too) leaves the mark; the next fold must take it
// for its own and finish, not take the file for one something else changed.
func TestFoldFailsAfterMark(t *testing.T) {
	w := newWorld(t, 512, true)
	r, f := w.bootstrapped()
	w.Ref.Insert(20)
	w.Commit()
	mustStep(t, f)
	w.Ref.Insert(20)
	txid := w.Commit()
	if err := f.catchUp(t.Context()); err != nil {
		t.Fatal(err)
	}
	// At the last step before page 1 is written again, the base file's
	// descriptor becomes a read-only one of the same file: the write that
	// restores page 1 fails in the kernel (EBADF), as an EIO would.
	fd := int(r.base.f.Fd())
	saved, err := unix.Dup(fd)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(saved)
	ro, err := os.Open(w.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	testHook = func(stage string) {
		if stage == "fold:pages" {
			if err := unix.Dup2(int(ro.Fd()), fd); err != nil {
				t.Error(err)
			}
		}
	}
	_, err = r.Fold()
	testHook = nil
	if err == nil {
		t.Fatal("a fold whose write of page 1 failed did not fail")
	}
	t.Logf("fold: %v", err)
	hdr := make([]byte, 16)
	ro.ReadAt(hdr, 0)
	if string(hdr) != foldingMagic {
		t.Fatalf("the failed fold left %q, not its mark: the test does not test what it says", hdr)
	}
	w.checkHead(r, txid, "after the failed fold")

	if err := unix.Dup2(saved, fd); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Fold(); err != nil {
		t.Fatalf("the fold after one that failed past its mark: %v", err)
	}
	if p := r.CopiedAside(); p != "" {
		t.Fatalf("the replica was copied aside to %s as if something else had changed it", p)
	}
	w.checkHead(r, txid, "after the fold")
	w.checkBase(txid, "after the fold")
}

// An install of a hydrated image that fails after the image was renamed
// into place (the state file that records it cannot be written on a full
// disk; a directory sync or the base file's open fails with EMFILE) is
// tried again at the next step, and must then finish: it went back to the
// image's old name, gone, and failed the same way at every step until a
// restart, the follower stuck at the snapshot's TXID.
func TestInstallHydratedRetried(t *testing.T) {
	w := newWorld(t, 4096, false)
	w.InsertRows(100, 3000)
	w.AdvanceRef()
	w.Snapshot()
	r := w.openReplica()
	defer r.Close()
	ctx := t.Context()
	snaps, err := w.Store.ListAfter(ctx, store.SnapshotLevel, 0)
	if err != nil || len(snaps) != 1 {
		t.Fatalf("snapshots: %v %v", snaps, err)
	}
	fi := snaps[0]
	fetch := func(ctx context.Context, off, n int64) (io.ReadCloser, error) {
		return w.Store.OpenRange(ctx, fi, off, n)
	}
	h, ck, err := r.BeginHydration(LazySnapshot{Want: want(fi), Fetch: fetch, Ctx: ctx})
	if err != nil {
		t.Fatal(err)
	}
	h.Run(ck)
	if err := h.Err(); err != nil {
		t.Fatal(err)
	}
	// Once the image has its name, the state file's temporary copy cannot
	// be created: a local error, as ENOSPC would be.
	tmp := statePath(w.Path) + ".tmp"
	testHook = func(stage string) {
		if stage == "install:renamed" {
			if err := os.Mkdir(tmp, 0o755); err != nil {
				t.Error(err)
			}
		}
	}
	err = r.InstallHydrated(h)
	testHook = nil
	if err == nil {
		t.Fatal("an install whose state file could not be written did not fail")
	}
	t.Logf("install: %v", err)
	w.checkHead(r, w.Pub.TXID, "after the failed install")
	if err := os.Remove(tmp); err != nil {
		t.Fatal(err)
	}
	if err := r.InstallHydrated(h); err != nil {
		t.Fatalf("the install tried again, with room: %v", err)
	}
	w.checkHead(r, w.Pub.TXID, "after the install")
	w.checkBase(w.Pub.TXID, "after the install")
}

// A hydration whose image cannot be written (a full disk, EIO) is not the
// store's fault: its stream starts again for as long as that lasts, says
// why meanwhile (Retrying), and finishes once the image can be written
// again. It gave up after streamTries starts, and the follower then
// abandoned the snapshot: every reader's reads failed, "failed to verify".
func TestHydrateStreamLocalError(t *testing.T) {
	restore := streamBackoff
	streamBackoff = func(int) time.Duration { return time.Millisecond }
	defer func() { streamBackoff = restore }()
	w := newWorld(t, 4096, false)
	w.InsertRows(100, 3000)
	w.AdvanceRef()
	w.Snapshot()
	r := w.openReplica()
	defer r.Close()
	ctx := t.Context()
	snaps, err := w.Store.ListAfter(ctx, store.SnapshotLevel, 0)
	if err != nil || len(snaps) != 1 {
		t.Fatalf("snapshots: %v %v", snaps, err)
	}
	fi := snaps[0]
	var streams atomic.Int64
	var fd, saved int = -1, -1
	fetch := func(ctx context.Context, off, n int64) (io.ReadCloser, error) {
		// The stream's starts: the image's descriptor is a read-only one
		// until streamTries+5 of them have failed, so that every write
		// fails in the kernel (EBADF), as ENOSPC or EIO would.
		if fd >= 0 && streams.Add(1) == streamTries+5 {
			if err := unix.Dup2(saved, fd); err != nil {
				t.Error(err)
			}
		}
		return w.Store.OpenRange(ctx, fi, off, n)
	}
	h, ck, err := r.BeginHydration(LazySnapshot{Want: want(fi), Fetch: fetch, Ctx: ctx})
	if err != nil {
		t.Fatal(err)
	}
	fd = int(h.img.Fd())
	if saved, err = unix.Dup(fd); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(saved)
	ro, err := os.Open(h.path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if err := unix.Dup2(int(ro.Fd()), fd); err != nil {
		t.Fatal(err)
	}
	var seen error
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-h.Finished():
				return
			case <-time.After(100 * time.Microsecond):
				if err := h.Retrying(); err != nil && seen == nil {
					seen = err
				}
			}
		}
	}()
	h.Run(ck)
	<-done
	if err := h.Err(); err != nil {
		t.Fatalf("after %d starts the stream gave up on a local error: %v", streams.Load(), err)
	}
	if seen == nil {
		t.Error("the stream's failure was never shown while it retried")
	} else {
		t.Logf("retrying: %v", seen)
	}
	if err := r.InstallHydrated(h); err != nil {
		t.Fatal(err)
	}
	w.checkHead(r, w.Pub.TXID, "after the install")
	w.checkBase(w.Pub.TXID, "after the install")
}

// A hydration abandoned because its store kept failing fails its readers'
// reads saying so: they said the snapshot had failed to verify, which sends
// an operator looking for a corrupt file that no one found.
func TestAbandonedHydrationSaysWhy(t *testing.T) {
	for _, tc := range []struct {
		why  error
		want string
	}{
		{errors.New("read tcp: connection reset by peer"), "could not be verified (its download kept failing)"},
		{fmt.Errorf("page 2: %w", ErrCorrupt), "failed to verify"},
	} {
		w := newWorld(t, 4096, false)
		w.InsertRows(20, 3000)
		w.AdvanceRef()
		w.Snapshot()
		r := w.openReplica()
		snaps, err := w.Store.ListAfter(t.Context(), store.SnapshotLevel, 0)
		if err != nil || len(snaps) != 1 {
			t.Fatalf("snapshots: %v %v", snaps, err)
		}
		fi := snaps[0]
		fetch := func(ctx context.Context, off, n int64) (io.ReadCloser, error) {
			return w.Store.OpenRange(ctx, fi, off, n)
		}
		h, _, err := r.BeginHydration(LazySnapshot{Want: want(fi), Fetch: fetch, Ctx: t.Context()})
		if err != nil {
			t.Fatal(err)
		}
		v, err := r.Pin()
		if err != nil {
			t.Fatal(err)
		}
		if err := r.AbandonHydration(h, tc.why, false); err != nil {
			t.Fatal(err)
		}
		_, err = v.ReadAt(make([]byte, 4096), 4096)
		if !errors.Is(err, ErrExpired) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("abandoned for %v: a reader's read fails with %v; want %q", tc.why, err, tc.want)
		}
		v.Unpin()
		r.Close()
	}
}
