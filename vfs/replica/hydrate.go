package replica

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/superfly/ltx"
)

// A Hydration fills the image of a snapshot that is served before it is
// all local (a lazy bootstrap): the image is a database file in the log
// directory, sparse at first, named by no state file, so that nothing but
// this process's Versions ever reads it — plain sqlite3 readers of the
// replica's path find no file there until the image is complete, verified
// and renamed into place (InstallHydrated), as a full bootstrap's staged
// snapshot is.
//
// Pages get into the image two ways:
//   - the stream (Run) reads the rest of the snapshot file in one ranged
//     GET, in order, checksumming every byte, and writes every page; its
//     progress is checkpointed (hydrate_ckpt.go), so a restart keeps what
//     it had written;
//   - a reader that needs a page not local yet (ReadAt sees a
//     missingPage) fetches the frames of the pages around it with one
//     ranged GET (demand), and writes those not local yet.
//
// What is verified when: the header by ltxguard's rules and the index by
// snapshotLayout's, before anything is served; each frame, before it is
// written, by decodeFrame (its page number, its size, one page exactly);
// the file checksum (and the database checksum, when the snapshot carries
// one) once the stream reaches the end of the file. A page a reader
// fetched is compared with the stream's copy when the stream reaches it:
// every page served is thereby covered by the file checksum before the
// image is installed, and a mismatch rejects the whole snapshot (its
// versions expire: every read of them fails). Before that, a page served
// is only known to be a well-formed frame of that page where the verified
// index puts it: LZ4 blocks carry no checksum, so a flipped bit in one
// would be served until the end of the stream rejects the snapshot. That
// is why bootstrap=full, which serves nothing before the file checksum
// passed, stays the default.
type Hydration struct {
	lay    *snapshotLayout
	fetch  RangeFunc
	ctx    context.Context // ends when the follower stops: bounds every fetch
	path   string          // the image
	img    *os.File        // the image, read and written by offset
	ps     int
	commit uint32

	// local has one bit per page: set once the page is in the image (the
	// lock page from the start). Bits are only ever set, under mu, after
	// the page is written; readers test them without a lock.
	local []atomic.Uint64

	// mu guards writes to the image and to local, and calls. Lock order:
	// Replica.mu (readers never hold it while they fetch: see
	// Version.ReadAt) is never taken under it. It is held across writes
	// of at most one batch of pages to the image (page cache), never
	// across a fetch or an fsync.
	mu    sync.Mutex
	calls map[uint32]*demandCall // demand chunk → the fetch under way

	pagesLocal  atomic.Int64
	fetched     atomic.Int64 // bytes fetched from the store, both ways
	demandGets  atomic.Int64
	rejected    atomic.Int64 // fetched ranges that failed to verify (and were fetched again)
	started     time.Time
	streamFrom  atomic.Int64 // the stream's next file offset
	finished    chan struct{}
	finishedErr error                 // set before finished is closed
	retrying    atomic.Pointer[error] // the stream's last failure, while it waits to start again
	verified    verifiedSnapshot
	// installing is the state InstallHydrated wrote to name the image, once
	// written: an install that failed after it (the image may have been
	// renamed already) goes on from there when it is tried again.
	installing *State
}

// RangeFunc reads bytes [off, off+n) of the snapshot file being hydrated.
type RangeFunc func(ctx context.Context, off, n int64) (io.ReadCloser, error)

// verifiedSnapshot is what the stream learned that Install needs.
type verifiedSnapshot struct {
	checksum    ltx.Checksum // the database checksum; 0 when the snapshot has none
	page1Sum    ltx.Checksum
	page1Header []byte // the primary's header of page 1
}

// ErrServedWrong means a page fetched on demand, and served, differs from
// the copy the snapshot's checksummed stream carries: the versions that
// served it are abandoned and the bootstrap starts again, without
// rejecting the snapshot (the stream's copy may well be right).
var ErrServedWrong = errors.New("a page served while hydrating was not the snapshot's")

// demandChunk is how many pages one demand fetches: the page asked for and
// its neighbours, aligned, since a B-tree reader often reads pages near
// each other (a scan, an index's leaves) and a round trip costs far more
// than a few more kilobytes.
const demandChunk = 16

// demandTries is how many times a demand fetches a range that fails to
// verify (or to arrive) before the read fails.
const demandTries = 3

// demandTimeout bounds one demand fetch.
var demandTimeout = 30 * time.Second

type demandCall struct {
	done chan struct{}
	err  error
}

// missingPage is readPage's answer for a page of a hydrating snapshot that
// is not local yet: the caller releases Replica.mu, fetches it (demand)
// and reads again.
type missingPage struct {
	h    *Hydration
	pgno uint32
}

func (m *missingPage) Error() string {
	return fmt.Sprintf("page %d is not hydrated yet", m.pgno)
}

// has says whether page pgno is in the image.
func (h *Hydration) has(pgno uint32) bool {
	i := pgno - 1
	return h.local[i/64].Load()&(1<<(i%64)) != 0
}

// setLocal records page pgno as in the image. The caller holds mu.
func (h *Hydration) setLocal(pgno uint32) {
	i := pgno - 1
	w := &h.local[i/64]
	if w.Load()&(1<<(i%64)) == 0 {
		w.Store(w.Load() | 1<<(i%64))
		h.pagesLocal.Add(1)
	}
}

// writePages writes decoded pages first, first+1, ... into the image.
// A demand skips pages already there. The stream compares them instead:
// a page a reader was served must be the one the checksummed stream
// carries, or the snapshot is rejected.
func (h *Hydration) writePages(first uint32, pages []byte, stream bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var have []byte
	start := -1 // first page of the run to write
	flush := func(end int) error {
		if start < 0 {
			return nil
		}
		off := int64(first-1+uint32(start)) * int64(h.ps)
		if _, err := h.img.WriteAt(pages[start*h.ps:end*h.ps], off); err != nil {
			return fmt.Errorf("hydrate: write pages: %w", err)
		}
		for i := start; i < end; i++ {
			h.setLocal(first + uint32(i))
		}
		start = -1
		return nil
	}
	n := len(pages) / h.ps
	for i := 0; i < n; i++ {
		pgno := first + uint32(i)
		if !h.has(pgno) {
			if start < 0 {
				start = i
			}
			continue
		}
		if err := flush(i); err != nil {
			return err
		}
		if !stream || pgno == ltx.LockPgno(uint32(h.ps)) {
			continue
		}
		if have == nil {
			have = make([]byte, h.ps)
		}
		if _, err := h.img.ReadAt(have, int64(pgno-1)*int64(h.ps)); err != nil {
			return fmt.Errorf("hydrate: read page %d back: %w", pgno, err)
		}
		if !bytes.Equal(have, pages[i*h.ps:(i+1)*h.ps]) {
			// One of the two copies is wrong, and a reader has been served
			// the first: its versions must go. Which one the file checksum
			// would tell, but the snapshot need not be rejected for a range
			// spoiled in transit: the bootstrap starts again.
			return fmt.Errorf("page %d as fetched by a reader differs from the snapshot's stream: %w", pgno, ErrServedWrong)
		}
	}
	return flush(n)
}

// demand brings the chunk of pages around pgno into the image, once for
// every reader that asks at the same time. It waits at most demandTimeout
// per try, and is cancelled when the follower stops.
func (h *Hydration) demand(pgno uint32) error {
	chunk := (pgno - 1) / demandChunk
	h.mu.Lock()
	if c, ok := h.calls[chunk]; ok {
		h.mu.Unlock()
		<-c.done
		return c.err
	}
	c := &demandCall{done: make(chan struct{})}
	h.calls[chunk] = c
	h.mu.Unlock()

	first := chunk*demandChunk + 1
	last := min(first+demandChunk-1, h.commit)
	for try := 0; try < demandTries; try++ {
		if c.err = h.fetchPages(first, last); c.err == nil || h.ctx.Err() != nil {
			break
		}
		if errors.Is(c.err, ErrCorrupt) {
			h.rejected.Add(1)
		}
	}
	if c.err != nil {
		c.err = fmt.Errorf("fetch page %d of the snapshot being hydrated: %w", pgno, c.err)
	}
	h.mu.Lock()
	delete(h.calls, chunk)
	h.mu.Unlock()
	close(c.done)
	return c.err
}

// fetchPages fetches the frames of pages first..last with one ranged GET,
// verifies every frame, and writes the pages not local yet.
func (h *Hydration) fetchPages(first, last uint32) error {
	off, _ := h.lay.frame(first)
	end := h.lay.offs[last]
	ctx, cancel := context.WithTimeout(h.ctx, demandTimeout)
	defer cancel()
	h.demandGets.Add(1)
	rc, err := h.fetch(ctx, off, end-off)
	if err != nil {
		return err
	}
	defer rc.Close()
	raw := make([]byte, end-off) // at most demandChunk frames, each bounded by maxFrame
	n, err := io.ReadFull(rc, raw)
	h.fetched.Add(int64(n))
	if err != nil {
		return fmt.Errorf("read range: %w", err)
	}
	pages := make([]byte, int(last-first+1)*h.ps)
	for pgno := first; pgno <= last; pgno++ {
		fo, fn := h.lay.frame(pgno)
		if fn == 0 {
			continue // the lock page: zeros
		}
		dst := pages[int(pgno-first)*h.ps : int(pgno-first+1)*h.ps]
		if err := decodeFrame(raw[fo-off:fo-off+fn], pgno, dst); err != nil {
			return err
		}
	}
	hook("hydrate:demand")
	return h.writePages(first, pages, false)
}

// HydrationProgress is how far a lazy bootstrap has come.
type HydrationProgress struct {
	PagesLocal int64   `json:"pages_local"`
	PagesTotal int64   `json:"pages_total"`
	Bytes      int64   `json:"bytes_fetched"`
	BytesTotal int64   `json:"bytes_total"`
	Rate       float64 `json:"bytes_per_second"`
	DemandGets int64   `json:"demand_gets"`
	Rejected   int64   `json:"ranges_rejected"`
	Done       bool    `json:"done"`
}

// Progress says how far the hydration has come.
func (h *Hydration) Progress() HydrationProgress {
	p := HydrationProgress{
		PagesLocal: h.pagesLocal.Load(), PagesTotal: int64(h.commit), Bytes: h.fetched.Load(),
		BytesTotal: h.lay.size, DemandGets: h.demandGets.Load(), Rejected: h.rejected.Load(),
	}
	if s := time.Since(h.started).Seconds(); s > 0 {
		p.Rate = float64(p.Bytes) / s
	}
	select {
	case <-h.finished:
		p.Done = h.finishedErr == nil
	default:
	}
	return p
}

// Finished is closed once the stream has ended, verified or not (Err).
func (h *Hydration) Finished() <-chan struct{} { return h.finished }

// Err is why the hydration failed, once Finished is closed; nil if the
// image is complete and verified.
func (h *Hydration) Err() error { return h.finishedErr }

// TXID is the snapshot's.
func (h *Hydration) TXID() ltx.TXID { return h.lay.hdr.MaxTXID }

// readPageFetching reads page pgno of v for the follower (Apply tracks
// checksums through the pages it replaces): a page not hydrated yet is
// fetched first.
func (r *Replica) readPageFetching(v *Version, pgno uint32, buf []byte) error {
	for try := 0; ; try++ {
		r.mu.RLock()
		err := v.readPage(pgno, buf)
		r.mu.RUnlock()
		var miss *missingPage
		if !errors.As(err, &miss) || try == demandTries {
			return err
		}
		if err := miss.h.demand(miss.pgno); err != nil {
			return err
		}
	}
}
