package follow

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/walrust/walrust/vfs/replica"
	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// gatedStore is the World's store with ranged reads a test can hold back
// (the stream: any range longer than gateOver) and corrupt (the next
// corruptNext short ranges, by corrupt).
type gatedStore struct {
	*store.FileStore
	gate     chan struct{} // closed: long ranges flow
	gateOver int64

	mu          sync.Mutex
	corruptNext int
	corrupt     func([]byte)
	// corruptStream, if set, spoils every long range (the stream).
	corruptStream func([]byte)
	ranges        int
}

func (g *gatedStore) OpenRange(ctx context.Context, fi store.FileInfo, off, n int64) (io.ReadCloser, error) {
	if n > g.gateOver {
		select {
		case <-g.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	rc, err := g.FileStore.OpenRange(ctx, fi, off, n)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ranges++
	if n > g.gateOver && g.corruptStream != nil {
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		g.corruptStream(b)
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	if n > g.gateOver || g.corruptNext == 0 || n < 1000 || off+n == fi.Size {
		return rc, nil
	}
	g.corruptNext--
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, err
	}
	g.corrupt(b)
	return io.NopCloser(bytes.NewReader(b)), nil
}

// lazyWorld is a world with a snapshot of about 2 MiB of incompressible
// rows and a follower that bootstraps it lazily through a gatedStore.
func lazyWorld(t *testing.T) (*world, *gatedStore, *replica.Replica, *Follower) {
	w := newWorld(t, 4096, false)
	w.InsertRows(400, 5000)
	w.AdvanceRef()
	w.Snapshot()
	g := &gatedStore{FileStore: w.Store, gate: make(chan struct{}), gateOver: 256 << 10}
	r := w.openReplica()
	f := newFollower(r, g, Options{Interval: time.Hour, Bootstrap: BootstrapLazy, Logger: slog.New(slog.NewTextHandler(w.Logs, nil))})
	t.Cleanup(func() {
		f.cancel()
		f.waitLazy()
		r.Close()
	})
	return w, g, r, f
}

// waitHydrated steps the follower until the lazy bootstrap is installed.
func waitHydrated(t *testing.T, f *Follower) {
	t.Helper()
	testtool.Eventually(t, "hydrated", 15*time.Second, func() error {
		if err := f.step(context.Background()); err != nil {
			return err
		}
		if f.lazy.h.Load() != nil {
			return errors.New("still hydrating")
		}
		return nil
	})
}

// A lazy bootstrap serves the snapshot before its stream has delivered a
// byte of pages: every page comes by demand, verified, equal to the
// primary's; files that arrive meanwhile apply on top; once the stream
// ends, the verified image becomes the base file, and plain readers of it
// see exactly the head.
func TestLazyBootstrap(t *testing.T) {
	ctx := context.Background()
	w, g, r, f := lazyWorld(t)
	f.bootMode = BootstrapLazy
	if err := f.step(ctx); err != nil {
		t.Fatal(err)
	}
	if r.Head() == nil {
		t.Fatal("no version to serve after a lazy bootstrap began")
	}
	if f.lazy.h.Load() == nil {
		t.Fatal("the bootstrap was not lazy")
	}
	// No file at the replica's path until hydrated: plain sqlite3 readers
	// never see a half-hydrated file.
	if ok, _ := fileExistsT(w.Path); ok {
		t.Fatal("a file at the replica's path while it hydrates")
	}
	snap := r.Head().TXID
	// A long reader: pinned at the snapshot from before any page was
	// local, through a file applied on top, the install and a fold.
	long, err := r.Pin()
	if err != nil {
		t.Fatal(err)
	}
	w.checkHead(r, snap, "served by demand while hydrating")
	p := f.Status().Hydration
	if p == nil || p.DemandGets == 0 || p.PagesLocal != p.PagesTotal {
		t.Fatalf("progress after reading every page by demand: %+v", p)
	}

	// A file arrives while it hydrates: applied on top, as usual.
	w.InsertRows(3, 3000)
	next := w.Commit()
	if err := f.step(ctx); err != nil {
		t.Fatal(err)
	}
	w.checkHead(r, next, "a file applied while hydrating")

	close(g.gate)
	waitHydrated(t, f)
	w.checkHead(r, next, "after the hydration")
	checkVersion(t, long, w.Image(snap), "the long reader, after the hydration")
	long.Unpin()
	if err := f.step(ctx); err != nil {
		t.Fatal(err)
	}
	w.checkBase(next, "the base file after the hydration and a fold")
	if f.Status().Hydrated == nil {
		t.Fatal("no record of the hydration in the status")
	}
}

// A range whose frames do not verify is rejected and fetched again: the
// reader gets the right page.
func TestLazyCorruptRangeFetchedAgain(t *testing.T) {
	w, g, r, f := lazyWorld(t)
	g.corruptNext = 1
	g.corrupt = func(b []byte) { b[3] ^= 0xff } // the first frame's page number
	if err := f.step(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.checkHead(r, r.Head().TXID, "read through a rejected range")
	if p := f.Status().Hydration; p.Rejected != 1 {
		t.Fatalf("%d ranges rejected, want 1", p.Rejected)
	}
	close(g.gate)
	waitHydrated(t, f)
	w.checkBase(r.Head().TXID, "the base file")
}

// A range that is well-formed but wrong (a flipped bit in an LZ4 literal:
// nothing per page can tell) is served while the snapshot hydrates — and
// when the stream reaches that page, the mismatch abandons the chain:
// every read of its versions fails, and the follower bootstraps again
// from the store, correctly.
func TestLazyWrongPageAbandonsChain(t *testing.T) {
	w, g, r, f := lazyWorld(t)
	g.corruptNext = 1
	g.corrupt = func(b []byte) { b[len(b)-100] ^= 0x01 } // deep in the last frame's literals
	ctx := context.Background()
	if err := f.step(ctx); err != nil {
		t.Fatal(err)
	}
	v, err := r.Pin()
	if err != nil {
		t.Fatal(err)
	}
	defer v.Unpin()
	buf := make([]byte, 4096)
	if _, err := v.ReadAt(buf, 4096*5); err != nil { // page 6: a demand of pages 1-16
		t.Fatal(err)
	}
	close(g.gate)
	testtool.Eventually(t, "rejected", 10*time.Second, func() error {
		f.step(ctx)
		if _, err := v.ReadAt(buf, 0); err == nil {
			return errors.New("the version still reads")
		}
		return nil
	})
	waitHydrated(t, f)
	w.checkHead(r, r.Head().TXID, "bootstrapped again")
}

func fileExistsT(path string) (bool, error) {
	_, err := os.Stat(path)
	return err == nil, nil
}

// A snapshot whose stream fails the file checksum is rejected: the
// versions served from it expire, and it is not bootstrapped from again.
func TestLazyBadFileChecksumRejects(t *testing.T) {
	_, g, r, f := lazyWorld(t)
	ctx := context.Background()
	if err := f.step(ctx); err != nil {
		t.Fatal(err)
	}
	fi := f.lazy.file
	v, err := r.Pin()
	if err != nil {
		t.Fatal(err)
	}
	defer v.Unpin()
	g.mu.Lock()
	g.corruptStream = func(b []byte) { b[len(b)-3000] ^= 0x01 } // in the last frames
	g.mu.Unlock()
	close(g.gate)
	testtool.Eventually(t, "rejected", 10*time.Second, func() error {
		f.step(ctx)
		if f.rejected(fi) == nil {
			return errors.New("not rejected yet")
		}
		return nil
	})
	if _, err := v.ReadAt(make([]byte, 4096), 0); err == nil {
		t.Fatal("a version of the rejected snapshot still reads")
	}
	if r.Head() != nil {
		t.Fatal("the replica still has a head from the rejected snapshot")
	}
}
