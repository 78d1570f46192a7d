package follow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/walrust/walrust/vfs/replica"
	"github.com/walrust/walrust/vfs/store"
)

// Bootstrap modes: how a new replica gets its snapshot.
const (
	// BootstrapFull downloads the whole snapshot, verifies it and only
	// then serves it: nothing unverified is ever read. The default.
	BootstrapFull = "full"
	// BootstrapLazy serves the snapshot as soon as its header and page
	// index are in, fetching pages by range as they are read while the
	// rest streams in the background (replica.Hydration says what is
	// verified when).
	BootstrapLazy = "lazy"
)

// CheckBootstrap checks a bootstrap mode's spelling; "" is the default.
func CheckBootstrap(mode string) error {
	switch mode {
	case "", BootstrapFull, BootstrapLazy:
		return nil
	}
	return fmt.Errorf("bootstrap=%q: want %q or %q", mode, BootstrapFull, BootstrapLazy)
}

// lazyState is the follower's side of a lazy bootstrap under way.
type lazyState struct {
	h     atomic.Pointer[replica.Hydration] // read by Status from any goroutine
	file  store.FileInfo                    // the snapshot: the follower's goroutine only
	start time.Time                         // when it began: the follower's goroutine only
	wg    sync.WaitGroup                    // the stream's goroutine
	// cancel ends the hydration's fetches, the stream's and the readers'
	// (waitLazy); set with h, on the follower's goroutine.
	cancel context.CancelFunc
	// warned says the stream's failure was logged: the follower's
	// goroutine only.
	warned bool
}

// errNoLazy says a lazy bootstrap cannot be done here: the full one is.
var errNoLazy = errors.New("lazy bootstrap not possible")

// beginLazy starts a lazy bootstrap from snapshot fi: once it returns nil
// the replica has a version, readable at once, and the stream runs on a
// goroutine of its own until finishLazy installs what it hydrated.
func (f *Follower) beginLazy(ctx context.Context, fi store.FileInfo) error {
	if _, ok := f.st.(store.RangeReader); !ok || fi.Size <= 0 {
		return errNoLazy
	}
	start := time.Now()
	f.log.Info("bootstrapping lazily from snapshot", "file", fi.String(), "bytes", fi.Size)
	f.emit(Event{Kind: EventBootstrapStart, File: fi, Bytes: fi.Size})
	fetch := func(ctx context.Context, off, n int64) (io.ReadCloser, error) {
		// A range must keep moving, as a download must.
		b := startBudget(ctx, fmt.Sprintf("the range %d+%d of %s", off, n, fi))
		rc, err := store.OpenRange(b.ctx, f.st, fi, off, n)
		if err != nil {
			b.stop()
			return nil, timedOut(b.ctx, err)
		}
		b.ReadCloser = rc
		return b, nil
	}
	hctx, cancel := context.WithCancel(ctx)
	h, ck, err := f.r.BeginHydration(replica.LazySnapshot{Want: f.want(fi), Fetch: fetch, Ctx: hctx})
	if err != nil {
		cancel()
		if replica.IsLazyUnsupported(err) {
			f.log.Info("the snapshot cannot be read by range; bootstrapping in full", "file", fi.String(), "err", err)
			return errNoLazy
		}
		if errors.Is(err, replica.ErrCorrupt) {
			f.reject(fi, err)
			return fmt.Errorf("lazy bootstrap: snapshot %s rejected: %w", fi, err)
		}
		return fmt.Errorf("lazy bootstrap: snapshot %s: %w (retrying)", fi, err)
	}
	f.lazy.file, f.lazy.cancel = fi, cancel
	f.lazy.h.Store(h)
	f.lazy.wg.Add(1)
	f.lazy.start = start
	go func() {
		defer f.lazy.wg.Done()
		stop := make(chan struct{})
		go func() { // progress, while the stream runs
			t := time.NewTicker(progressEvery)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					f.emit(Event{Kind: EventProgress, File: fi, Done: h.Progress().Bytes, Bytes: fi.Size})
				}
			}
		}()
		h.Run(ck)
		close(stop)
		f.PollNow() // install it now, not at the next poll
	}()
	f.log.Info("serving the snapshot while it hydrates", "file", fi.String(), "txid", h.TXID(), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// finishLazy installs a hydration that has ended, or abandons it; called
// by the follower's goroutine at the start of each step.
func (f *Follower) finishLazy() error {
	h := f.lazy.h.Load()
	if h == nil {
		return nil
	}
	select {
	case <-h.Finished():
	default:
		// A stream that waits to start again is said once per run of
		// failures (Status shows it while it lasts): a full disk stops
		// the hydration without failing any poll.
		rerr := h.Retrying()
		if rerr != nil && !f.lazy.warned {
			f.log.Warn("the snapshot's stream failed; it starts again from its checkpoint, and readers are served what is local or fetched meanwhile", "file", f.lazy.file.String(), "err", rerr)
		}
		f.lazy.warned = rerr != nil
		return nil
	}
	f.lazy.wg.Wait()
	fi := f.lazy.file
	err := h.Err()
	if err == nil {
		err = f.r.InstallHydrated(h)
		if err == nil {
			f.lazy.h.Store(nil)
			p := h.Progress()
			f.mu.Lock()
			f.status.Bootstraps++
			f.status.FilesApplied++
			f.status.Hydrated = &p
			f.mu.Unlock()
			f.log.Info("hydrated", "file", fi.String(), "pages", p.PagesTotal, "bytes", p.Bytes, "demand_gets", p.DemandGets, "rate_mib_s", p.Rate/(1<<20))
			f.emit(Event{Kind: EventSnapshotInstalled, File: fi, Bytes: fi.Size, Pages: int(p.PagesTotal), TXID: h.TXID(), Took: time.Since(f.lazy.start)})
			return nil
		}
		if !errors.Is(err, replica.ErrCorrupt) {
			// A local error (a full disk): the hydration's files stay,
			// and Install is tried again at the next step.
			return fmt.Errorf("lazy bootstrap: %w (retrying)", err)
		}
	}
	f.lazy.h.Store(nil)
	corrupt := errors.Is(err, replica.ErrCorrupt)
	if corrupt {
		f.reject(fi, err)
		f.log.Error("the snapshot served while it hydrated failed to verify; its readers' reads fail, and the replica bootstraps again", "file", fi.String(), "err", err)
	} else if errors.Is(err, replica.ErrServedWrong) {
		f.log.Error("a page served while the snapshot hydrated was not the snapshot's (a range spoiled in transit?); its readers' reads fail, and the replica bootstraps again", "file", fi.String(), "err", err)
	} else {
		f.log.Error("the snapshot's stream kept failing; its readers' reads fail, and the replica bootstraps again from its checkpoint", "file", fi.String(), "err", err)
	}
	if aerr := f.r.AbandonHydration(h, err, corrupt || errors.Is(err, replica.ErrServedWrong)); aerr != nil {
		err = errors.Join(err, aerr)
	}
	return fmt.Errorf("lazy bootstrap: snapshot %s: %w", fi, err)
}

// waitLazy waits for the stream's goroutine: the follower's context has
// ended, so it ends too.
func (f *Follower) waitLazy() {
	if f.lazy.cancel != nil {
		f.lazy.cancel()
	}
	f.lazy.wg.Wait()
}
