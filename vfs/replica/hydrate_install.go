package replica

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/internal/crc64iso"
	"github.com/walrust/walrust/vfs/internal/durable"
	"github.com/walrust/walrust/vfs/internal/ltxguard"
)

// A lazy bootstrap's files in the log directory: the image and its
// checkpoint. Neither is named by the state file: a replica whose first
// bootstrap is under way has no state file (or one with no TXID), and no
// file at its path. clearLog leaves them for the follower, which resumes
// the hydration if it bootstraps from the same snapshot, or removes them
// (DiscardHydration).
const (
	hydratePrefix = "hydrate-"
	imageExt      = ".image"
	checkpointExt = ".ckpt"
)

// LazySnapshot is what a lazy bootstrap needs of the snapshot it reads.
type LazySnapshot struct {
	Want  ltxguard.Want // as for StageSnapshot; Size must be the listed size
	Fetch RangeFunc     // reads a range of the file
	// Ctx bounds every fetch, the stream's and the readers': the
	// follower's, which ends when it stops.
	Ctx context.Context
}

// BeginHydration starts a lazy bootstrap of a new replica from a snapshot:
// it reads the snapshot's header and page index (fetchLayout: one round
// trip, two for a large index), checks them, and publishes the snapshot as
// the replica's head, readable at once: pages not local yet are fetched
// as they are read. It resumes a hydration of the same snapshot that a
// restart interrupted, keeping the pages its checkpoint records. The
// caller runs h.Run(ck) on a goroutine of its own, and calls
// InstallHydrated (or AbandonHydration) once it has finished.
func (r *Replica) BeginHydration(src LazySnapshot) (*Hydration, *checkpoint, error) {
	if r.head != nil || r.base != nil {
		return nil, nil, errors.New("lazy bootstrap: the replica has a version already")
	}
	want := src.Want
	want.Snapshot = true
	if want.MaxSize <= 0 {
		want.MaxSize = DefaultMaxSize
	}
	lay, err := fetchLayout(src.Ctx, src.Fetch, want)
	if err != nil {
		return nil, nil, err
	}
	h, ck, err := r.openImage(lay, src)
	if err != nil {
		return nil, nil, err
	}
	// Page 1 now: every reader's first read, and its checksum is where a
	// file applied on top starts its running checksum from (Apply).
	page1Sum, err := h.page1Checksum()
	if err != nil {
		h.img.Close()
		return nil, nil, err
	}
	hdr := lay.hdr
	seg := &segment{path: h.path, f: h.img, full: true, meta: segmentMeta{
		MinTXID: 1, MaxTXID: hdr.MaxTXID, PageSize: hdr.PageSize, Commit: hdr.Commit, Timestamp: hdr.Timestamp,
		// The trailer's database checksum, unverified until the stream
		// ends: Apply checks the next file against it, and if it lied the
		// whole chain is abandoned then.
		Checksum: lay.trailer.PostApplyChecksum, Page1Checksum: page1Sum,
	}}
	if hdr.NoChecksum() {
		seg.meta.Checksum = 0
	}
	v := r.newVersion(seg)
	v.hyd = h
	r.publish(v)
	hook("hydrate:published")
	return h, ck, nil
}

// openImage opens the image of the snapshot, resuming from its checkpoint
// if one for this very snapshot survived, else creating it afresh.
func (r *Replica) openImage(lay *snapshotLayout, src LazySnapshot) (*Hydration, *checkpoint, error) {
	hdr := lay.hdr
	base := filepath.Join(r.logDir, fmt.Sprintf("%s%016x-%x", hydratePrefix, uint64(hdr.MaxTXID), lay.size))
	path, ckPath := base+imageExt, base+checkpointExt
	hdrSum := crc64iso.Update(0, lay.hdrRaw)
	dbSize := int64(hdr.Commit) * int64(hdr.PageSize)
	ck, err := readCheckpoint(ckPath)
	if err == nil && (ck.txid != hdr.MaxTXID || ck.size != lay.size || ck.hdrSum != hdrSum || ck.next < 1 || ck.next > hdr.Commit+1) {
		err = errors.New("checkpoint of another snapshot")
	}
	var img *os.File
	if err == nil {
		img, err = os.OpenFile(path, os.O_RDWR, 0)
		if err == nil {
			if fi, serr := img.Stat(); serr != nil || fi.Size() != dbSize {
				img.Close()
				err = errors.New("image of another size")
			}
		}
	}
	if err != nil { // start afresh
		if err := r.DiscardHydration(); err != nil {
			return nil, nil, err
		}
		if err := checkFreeSpace(path, dbSize); err != nil {
			return nil, nil, err
		}
		if img, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, durable.Mode); err != nil {
			return nil, nil, fmt.Errorf("lazy bootstrap: %w", err)
		}
		if err := img.Truncate(dbSize); err != nil { // sparse: pages are written as they come
			img.Close()
			return nil, nil, fmt.Errorf("lazy bootstrap: size image: %w", err)
		}
		ck = &checkpoint{path: ckPath, txid: hdr.MaxTXID, size: lay.size, hdrSum: hdrSum, next: 1, crc: hdrSum}
		if !hdr.NoChecksum() {
			ck.dbSum = ltx.ChecksumFlag
		}
		// The image exists before the checkpoint that vouches for it.
		if err := img.Sync(); err == nil {
			err = durable.SyncDir(r.logDir)
		}
		if err := ck.write(); err != nil {
			img.Close()
			return nil, nil, err
		}
	}
	ck.path = ckPath
	h := &Hydration{
		lay: lay, fetch: src.Fetch, ctx: src.Ctx, path: path, img: img, ps: int(hdr.PageSize), commit: hdr.Commit,
		local: make([]atomic.Uint64, (hdr.Commit+63)/64), calls: make(map[uint32]*demandCall),
		started: time.Now(), finished: make(chan struct{}),
	}
	// Pages before the checkpoint's are in the image, and on disk; so is
	// the lock page (zeros, never stored).
	h.mu.Lock()
	for pgno := uint32(1); pgno < ck.next; pgno++ {
		h.setLocal(pgno)
	}
	if lock := ltx.LockPgno(hdr.PageSize); lock <= hdr.Commit {
		h.setLocal(lock)
	}
	h.mu.Unlock()
	return h, ck, nil
}

// DiscardHydration removes a lazy bootstrap's files: one of another
// snapshot, or when the replica bootstraps in full instead.
func (r *Replica) DiscardHydration() error {
	entries, err := os.ReadDir(r.logDir)
	if err != nil {
		return fmt.Errorf("discard hydration: %w", err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), hydratePrefix) {
			continue
		}
		if err := os.Remove(filepath.Join(r.logDir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("discard hydration: %w", err)
		}
	}
	return nil
}

// InstallHydrated makes a hydrated, verified image the replica's base
// file, as a first bootstrap's staged snapshot is (installFirst), but
// keeps the versions applied on top of it meanwhile: the snapshot's
// version becomes the chain's root, read from the base file from now on.
// Only the follower calls it, after h.Finished with no error.
//
// Ordering, for crashes: the image's page 1 gets the served header and is
// synced; the state file then names the image as a staged snapshot; the
// rename over the (missing) base file and the state's TXID follow, as
// finishFirstInstall does them, and Open finishes them after a crash; the
// checkpoint goes last. A crash before the state names the image leaves
// the checkpoint: the hydration resumes, streams what came after it
// again, and installs (page 1's header, patched already, is the one
// thing it does not stream again: the checkpoint keeps the primary's).
func (r *Replica) InstallHydrated(h *Hydration) error {
	if err := h.Err(); err != nil {
		return err
	}
	r.mu.RLock()
	var hv *Version
	for v := r.head; v != nil; v = v.parent {
		if v.hyd == h {
			hv = v
		}
	}
	r.mu.RUnlock()
	if hv == nil {
		return errors.New("install hydrated snapshot: not the replica's chain")
	}
	vs := h.verified
	if h.installing == nil {
		if _, err := patchFileHeader(h.path, hv); err != nil {
			return fmt.Errorf("install hydrated snapshot: %w", err)
		}
		m := hv.seg.meta
		st := State{Origin: r.state.Origin, Counter: hv.Counter, Staged: &StagedSnapshot{
			Path: h.path, TXID: m.MaxTXID, Timestamp: time.UnixMilli(m.Timestamp).UTC(), Checksum: vs.checksum,
			PageSize: m.PageSize, Commit: m.Commit, Page1Checksum: vs.page1Sum, Page1Header: vs.page1Header,
		}}
		if err := writeState(r.path, &st); err != nil {
			return fmt.Errorf("install hydrated snapshot: %w", err)
		}
		hook("hydrate:state")
		h.installing = &st
	}
	// From the state that names the image, whether or not a try that
	// failed after it (a full disk, EMFILE) renamed the image already:
	// finishFirstInstall and what follows are idempotent, as after a crash.
	r.state = *h.installing
	if err := r.finishFirstInstall(); err != nil {
		return fmt.Errorf("install hydrated snapshot: %w", err)
	}
	hook("hydrate:renamed")
	b, err := openBase(r.path)
	if err != nil {
		return fmt.Errorf("install hydrated snapshot: %w", err)
	}
	// Re-root the chain: the snapshot's version is now the base file's.
	// Under the write lock no reader is reading the image's descriptor,
	// which is closed here; Direct never handed it out (a chain with an
	// unfolded snapshot reads through ReadAt).
	r.mu.Lock()
	r.gate.close()
	r.base, r.root = b, hv
	hv.base, hv.folded, hv.Checksum, hv.Page1Checksum = b, true, vs.checksum, vs.page1Sum
	hv.chain.full, hv.chain.root = nil, hv
	for v := r.head; v != hv; v = v.parent {
		v.base = b
	}
	hv.seg.close()
	r.baseHdr = baseHeader{known: true, counter: hv.Counter, commit: hv.Commit}
	r.mu.Unlock()
	// The checkpoint is no use now; one left by a crash before this line
	// is removed by the next Open.
	if err := os.Remove(h.lay.checkpointPath(r.logDir)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("install hydrated snapshot: %w", err)
	}
	hook("hydrate:installed")
	return nil
}

// checkpointPath is where the checkpoint of this layout's snapshot is.
func (l *snapshotLayout) checkpointPath(logDir string) string {
	return filepath.Join(logDir, fmt.Sprintf("%s%016x-%x%s", hydratePrefix, uint64(l.hdr.MaxTXID), l.size, checkpointExt))
}

// AbandonHydration gives up a hydration whose snapshot failed to verify,
// or could not be verified (why says which):
// every version of its chain expires (its readers' reads fail from now on:
// some of what they read was never verified), the replica has no version
// again, and its files go (discard) or stay for a bootstrap to resume
// from. The follower then bootstraps again.
func (r *Replica) AbandonHydration(h *Hydration, why error, discard bool) error {
	r.mu.Lock()
	chain := []*Version{}
	for v := r.head; v != nil; v = v.parent {
		chain = append(chain, v)
	}
	msg := fmt.Sprintf("the snapshot it read while it was hydrating failed to verify: %v", why)
	if !errors.Is(why, ErrCorrupt) && !errors.Is(why, ErrServedWrong) {
		// The store, not the file, failed: nothing was proven wrong, but
		// what was served was never verified either.
		msg = fmt.Sprintf("the snapshot it read while it was hydrating could not be verified (its download kept failing): %v", why)
	}
	for _, v := range chain {
		v.expiredWhy = msg
		v.expired.Store(true)
		if v.seg != nil {
			v.seg.close()
		}
	}
	r.gate.close()
	r.head, r.root = nil, nil
	r.mu.Unlock()
	r.revokeMu.Lock()
	for _, v := range chain {
		for rv := range v.revokers {
			rv.Revoke()
		}
		v.revokers = nil
	}
	r.revokeMu.Unlock()
	err := r.removeSegments()
	if discard {
		err = errors.Join(err, r.DiscardHydration())
	}
	return err
}

// page1Checksum fetches page 1 if it is not local, and returns its
// checksum as the primary wrote it.
func (h *Hydration) page1Checksum() (ltx.Checksum, error) {
	if !h.has(1) {
		if err := h.demand(1); err != nil {
			return 0, err
		}
	}
	page := make([]byte, h.ps)
	if _, err := h.img.ReadAt(page, 0); err != nil {
		return 0, fmt.Errorf("lazy bootstrap: read page 1: %w", err)
	}
	return ltx.ChecksumPage(1, page), nil
}
