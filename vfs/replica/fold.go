package replica

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/superfly/ltx"
	"golang.org/x/sys/unix"
)

// foldLockWait bounds how long a fold waits for other processes' readers of
// the base file to finish; past it the fold is simply tried again after the
// next poll. While it waits, new readers are held off (SQLite's PENDING
// lock), so it is kept short.
const foldLockWait = 50 * time.Millisecond

// Fold copies applied versions into the base file, up to the oldest version
// a reader still pins (or the head when none is pinned), and records the new
// base in the state file. It reports whether anything was folded; a fold
// that readers prevent is not an error.
//
// Write ordering, so that a crash at any instant restarts into one TXID:
//  1. sync the segments being folded (until now they were only written):
//     the log files that hold them, every older log file (a restart drops
//     all that follows a torn segment, so none before them may be lost),
//     and the log directory when a file is new — one fsync per log file,
//     however many applied files its segments stand for;
//  2. under SQLite's exclusive lock, write their pages into the base file
//     (page 1 last, with a new change counter) and sync it — the file is a
//     mix of TXIDs now, but the state still names the old root and the
//     segments are durable, so a restart simply folds them again (page
//     images are idempotent);
//  3. write the state file naming the new root (written beside the old
//     one before step 2, so that a full disk fails the fold before the base
//     file is touched; renamed over it now);
//  4. remove the folded segments (a restart ignores segments at or below the
//     root, so a crash between 3 and 4 is harmless).
//
// In-process readers are not stopped: one pinned at a version at or above
// the new root finds every page the fold rewrites in a segment of its chain,
// which stays open until step 4, and every other page is not touched.
// Other processes read the base file under SQLite's shared lock, which the
// exclusive lock excludes, and see the new change counter afterwards.
func (r *Replica) Fold() (bool, error) {
	r.mu.Lock()
	if r.base == nil { // a lazy bootstrap's snapshot, still hydrating: nothing to fold into
		r.mu.Unlock()
		return false, nil
	}
	fold, target := r.foldable()
	r.mu.Unlock()
	if target == nil {
		return false, nil
	}
	if err := r.base.lock.tryExclusive(foldLockWait); errors.Is(err, errBusy) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("fold: %w", err)
	}
	hook("fold:locked")
	// The file must still be what the last fold left; a snapshot in the
	// fold rewrites all of it (after keeping a copy of a changed one).
	err := r.checkUnmodified(slices.ContainsFunc(fold, func(v *Version) bool { return v.seg.full }))
	// The state is written under the lock too, so that a passive reader in
	// another process reads the TXID of the file it reads.
	st := r.stateFor(target)
	var page1 []byte
	if err == nil {
		page1, st.Page1Header, err = r.page1At(target)
	}
	// The new state is written beside the state file before the base file
	// is touched, and renamed over it once the file is synced: a full disk
	// then fails the fold here, with the file whole at the root's TXID, as
	// the state says, which readers in other processes go on reading.
	var commitState func() error
	if err == nil {
		commitState, err = prepareState(r.path, &st)
	}
	if err == nil {
		err = r.writeFold(fold, target, page1)
		if err == nil {
			hook("fold:synced")
			err = commitState()
		}
		if err != nil {
			// A local failure (EIO, or ENOSPC where an overwrite takes
			// new blocks) may have left page 1 marked, or the file whole
			// at the target with a state file that still names the root:
			// this fold's doing, which the next one, that finishes it,
			// must not take for a change made by another program.
			r.learnHeader()
		}
	}
	if uerr := r.base.lock.unlockExclusive(); err == nil && uerr != nil {
		err = uerr
	}
	if err != nil {
		return false, fmt.Errorf("fold to TXID %s: %w", target.TXID, err)
	}

	r.mu.Lock()
	for _, v := range fold {
		v.folded = true
		v.chain.folded(v)
		v.seg.close()
	}
	target.chain.root = target
	for _, v := range r.abandoned {
		if v.seg != nil {
			v.seg.close()
		}
	}
	r.abandoned = nil
	target.parent = nil // let older versions be collected
	r.root = target
	r.state = st
	r.baseHdr = baseHeader{known: true, counter: target.Counter, commit: target.Commit}
	r.mu.Unlock()

	hook("fold:state")
	for _, v := range fold {
		if err := v.seg.remove(); err != nil {
			return true, err
		}
	}
	hook("fold:done")
	return true, nil
}

// foldable picks the versions to fold, oldest first, and the version the
// base file will hold afterwards; nil when a reader prevents any fold.
// Called with r.mu held.
func (r *Replica) foldable() ([]*Version, *Version) {
	var chain []*Version // unfolded versions, oldest first
	for v := r.head; v != nil && v != r.root; v = v.parent {
		chain = append(chain, v)
	}
	slices.Reverse(chain)
	if len(chain) == 0 || r.pinned(r.root) {
		// A reader on the root reads every unchanged page from the file.
		return nil, nil
	}
	for _, v := range r.abandoned {
		if r.pinned(v) {
			return nil, nil // a reader of a replaced chain still reads the file
		}
	}
	last := len(chain) - 1
	for i, v := range chain {
		if r.pinned(v) {
			last = i
			break
		}
	}
	return chain[:last+1], chain[last]
}

// page1At returns page 1 at target as the base file will hold it (the
// served header), and the primary's header of it (see State.Page1Header).
func (r *Replica) page1At(target *Version) (page1, header []byte, err error) {
	page1 = make([]byte, target.PageSize)
	r.mu.RLock()
	err = target.readPage(1, page1)
	r.mu.RUnlock()
	if err != nil {
		return nil, nil, err
	}
	// page1 is the primary's own when its checksum says so (it came from a
	// segment); read from the base file it is the patched copy, and the
	// state's header still holds.
	header = r.state.Page1Header
	if ltx.ChecksumPage(1, page1) == target.Page1Checksum {
		header = slices.Clone(page1[:headerSize])
	}
	target.patchHeader(page1, 0)
	return page1, header, nil
}

// writeFold performs steps 1 and 2 of Fold, page1 (page1At) last; the
// caller holds the lock.
func (r *Replica) writeFold(fold []*Version, target *Version, page1 []byte) error {
	segs := make([]*segment, len(fold))
	for i, v := range fold {
		segs[i] = v.seg
		if v.seg.log == nil { // a staged snapshot, an old segment file
			if err := v.seg.f.Sync(); err != nil {
				return fmt.Errorf("sync segment: %w", err)
			}
		}
	}
	if err := r.log.sync(segs); err != nil {
		return err
	}
	wf := r.base.f
	ps := int64(target.PageSize)
	// The file's new pages get their blocks before anything is marked: a
	// full disk (or a file size limit) then fails the fold here, with the
	// file still whole at the root's TXID, rather than half way, with a
	// torn file that no one can read until a fold succeeds.
	if err := reserve(wf, target.Size()); err != nil {
		return fmt.Errorf("grow base to %d bytes: %w", target.Size(), err)
	}
	// Page 1 first, with foldingMagic in place of SQLite's: from here until
	// the real page 1 is written last, the file is a mix of TXIDs, and if
	// this process dies meanwhile the mark stays. A plain SQLite reader in
	// another process then fails with "file is not a database" instead of
	// reading a torn file (the new counter makes it drop its cache and read
	// page 1 again), Passive.Begin reports ErrFoldInterrupted, and the next
	// follower folds again. The sync orders the mark before the pages on
	// disk too.
	mark := append([]byte(nil), page1...)
	copy(mark, foldingMagic)
	if _, err := wf.WriteAt(mark, 0); err != nil {
		return fmt.Errorf("write base: %w", err)
	}
	if err := wf.Sync(); err != nil {
		return fmt.Errorf("sync base: %w", err)
	}

	// A staged snapshot in the fold replaces the whole file: copy it (but
	// its page 1), then only the versions after it matter.
	start := 0
	for i, v := range fold {
		if v.seg.full {
			start = i
		}
	}
	if full := fold[start].seg; full.full {
		n := min(int64(full.meta.Commit), int64(target.Commit)) * ps
		if _, err := io.Copy(io.NewOffsetWriter(wf, ps), io.NewSectionReader(full.f, ps, n-ps)); err != nil {
			return fmt.Errorf("copy staged snapshot: %w", err)
		}
		hook("fold:snapshot")
		start++
	}

	buf := make([]byte, ps)
	written := make(map[uint32]bool)
	// Newest first, so each page is written once, with its newest image.
	for i := len(fold) - 1; i >= start; i-- {
		seg := fold[i].seg
		for pgno, off := range seg.pages {
			if written[pgno] || pgno > target.Commit || pgno == 1 {
				continue
			}
			if _, err := seg.f.ReadAt(buf, off); err != nil {
				return fmt.Errorf("read segment: %w", err)
			}
			if _, err := wf.WriteAt(buf, int64(pgno-1)*ps); err != nil {
				return fmt.Errorf("write base: %w", err)
			}
			written[pgno] = true
		}
	}
	hook("fold:pages")
	// Page 1 always, even when no version changed it (a WAL primary does not
	// bump its change counter): it carries the new counter and size, and
	// SQLite's magic again.
	if _, err := wf.WriteAt(page1, 0); err != nil {
		return fmt.Errorf("write base: %w", err)
	}
	// Shrink after VACUUM; also extends a file whose last page is the
	// never-stored lock page.
	if err := wf.Truncate(target.Size()); err != nil {
		return fmt.Errorf("truncate base: %w", err)
	}
	if err := wf.Sync(); err != nil {
		return fmt.Errorf("sync base: %w", err)
	}
	return nil
}

// stateFor is the state that names v as the root. A staged snapshot is no
// longer pending once v is at or past it.
func (r *Replica) stateFor(v *Version) State {
	return State{
		Origin: r.state.Origin, TXID: v.TXID, Timestamp: v.Timestamp, Checksum: v.Checksum,
		PageSize: v.PageSize, Commit: v.Commit, Counter: v.Counter, Page1Checksum: v.Page1Checksum,
	}
}

// reserve allocates blocks for the base file up to size, if it is smaller.
// The pages past its end belong to no version a reader of the file can be
// at (they are past every such version's commit), so they may change now.
// Pages within it are overwritten in place, which needs no new blocks.
func reserve(f *os.File, size int64) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	cur := fi.Size()
	if size <= cur {
		return nil
	}
	switch err := unix.Fallocate(int(f.Fd()), 0, cur, size-cur); {
	case err == nil:
		return nil
	case !errors.Is(err, unix.EOPNOTSUPP):
		// A failed fallocate may keep the blocks it got (ext4 does):
		// give them back, and leave the file as it was.
		return errors.Join(err, f.Truncate(cur))
	}
	// No fallocate here (some network and FUSE file systems): zeros.
	zero := make([]byte, min(size-cur, 1<<20))
	for off := cur; off < size; off += int64(len(zero)) {
		if _, err := f.WriteAt(zero[:min(int64(len(zero)), size-off)], off); err != nil {
			return err
		}
	}
	return nil
}
