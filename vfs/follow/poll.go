package follow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/replica"
	"github.com/walrust/walrust/vfs/store"
)

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
		if errors.Is(err, replica.ErrChainBroken) {
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
	cat, err := f.listAll(ctx)
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
// after it. It lists the snapshot level first, and the other levels while
// the snapshot downloads (ten requests in a row, a fifth of a small
// bootstrap's time on loopback), in ascending order as listCatalog does:
// a file compacted into a higher level meanwhile is found in one or the
// other. Files listed after the snapshot was chosen can only be newer.
func (f *Follower) bootstrap(ctx context.Context) error {
	f.lastCheck = time.Now()
	f.mu.Lock()
	f.status.FullListings++
	f.mu.Unlock()
	snaps, err := f.st.ListAfter(ctx, store.SnapshotLevel, 0)
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	skip := func(fi store.FileInfo) bool { return f.rejected(fi) != nil }
	cat := newCatalog(snaps, skip)
	p, err := cat.fromNewestSnapshot()
	if err != nil {
		var rejected strings.Builder
		for _, fi := range cat.rejected {
			fmt.Fprintf(&rejected, "; rejected %s: %v", fi, f.rejected(fi))
		}
		if rejected.Len() > 0 {
			return fmt.Errorf("bootstrap from %s: no usable snapshot%s", f.st, rejected.String())
		}
		return fmt.Errorf("bootstrap from %s: %w", f.st, err)
	}
	type listing struct {
		files []store.FileInfo
		err   error
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rest := make(chan listing, 1)
	go func() {
		var l listing
		for level := 0; level < store.SnapshotLevel && l.err == nil; level++ {
			var files []store.FileInfo
			files, l.err = f.st.ListAfter(lctx, level, 0)
			l.files = append(l.files, files...)
		}
		rest <- l
	}()
	err = f.installSnapshot(ctx, *p.snapshot)
	if err != nil {
		cancel()
	}
	l := <-rest // always: the listing never outlives the bootstrap
	if err != nil {
		return err
	}
	if l.err != nil {
		// The snapshot is in; the next poll lists every level again.
		return fmt.Errorf("bootstrap: %w", l.err)
	}
	// run marks the follower ready after this step, once the whole plan is
	// applied (or failed part-way with a version to serve), so that an open
	// sees the newest state the store had, not just the snapshot.
	cat = newCatalog(append(l.files, snaps...), skip)
	return f.applyAll(ctx, cat.chainFrom(p.snapshot.MaxTXID, nil).steps)
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
	if f.bootMode == BootstrapLazy && f.r.Head() == nil {
		if err := f.beginLazy(ctx, fi); !errors.Is(err, errNoLazy) {
			return err
		}
	}
	if f.r.Head() == nil {
		if err := f.r.DiscardHydration(); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
	}
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
		if errors.Is(err, replica.ErrCorrupt) {
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
			case errors.Is(err, replica.ErrChainBroken):
				f.chainBroken(fi, err)
			case errors.Is(err, replica.ErrCorrupt):
				f.reject(fi, err)
			default: // a local error (ENOSPC, EMFILE): the file may be fine
				return fmt.Errorf("apply %s: %w (retrying)", fi, err)
			}
			return fmt.Errorf("apply %s: %w", fi, err)
		}
		f.mu.Lock()
		f.status.FilesApplied++
		f.mu.Unlock()
		pages := v.PagesApplied()
		f.log.Debug("applied", "file", fi.String(), "txid", v.TXID, "pages", pages)
		f.emit(Event{Kind: EventApplied, File: fi, Bytes: fi.Size, Pages: pages, TXID: v.TXID, Took: time.Since(start)})
		return nil
	})
}

// listAll lists every level (one request per level), setting rejected
// files apart, and counts the full listing.
func (f *Follower) listAll(ctx context.Context) (*catalog, error) {
	f.lastCheck = time.Now()
	f.mu.Lock()
	f.status.FullListings++
	f.mu.Unlock()
	return listCatalog(ctx, f.st, func(fi store.FileInfo) bool { return f.rejected(fi) != nil })
}

// startOverModified bootstraps again from the newest snapshot, whatever
// the head, after a fold found the base file changed by something other
// than walrust: the snapshot's fold rewrites all of it (keeping a copy of
// the changed one), and the chain after the snapshot brings it back to
// the store's head.
func (f *Follower) startOverModified(ctx context.Context) error {
	cat, err := f.listAll(ctx)
	if err != nil {
		return fmt.Errorf("bootstrap again: %w", err)
	}
	snap, err := cat.fromNewestSnapshot()
	if err != nil {
		return fmt.Errorf("bootstrap again from %s: %w", f.st, err)
	}
	f.emit(Event{Kind: EventRebootstrap, File: *snap.snapshot, TXID: f.headTXID()})
	if err := f.follow(ctx, snap); err != nil {
		return err
	}
	f.modified = false
	return nil
}
