package replica

import (
	"fmt"
	"os"
	"slices"
)

// Fold copies applied versions into the base file, up to the oldest version
// a reader still pins (or the head when none is pinned), and records the new
// base in the state file. It reports whether anything was folded.
//
// Write ordering, so that a crash at any instant restarts into one TXID:
//  1. sync the segments being folded (until now they were only written);
//  2. write their pages into the base file and sync it — the file is a mix
//     of TXIDs now, but the state still names the old root and the segments
//     are durable, so a restart simply folds them again (page images are
//     idempotent);
//  3. write the state file naming the new root;
//  4. remove the folded segments (a restart ignores segments at or below the
//     root, so a crash between 3 and 4 is harmless).
//
// Readers are not stopped: a reader pinned at a version at or above the new
// root finds every page the fold rewrites in a segment of its chain, which
// stays open until step 4, and every other page is not touched.
func (r *Replica) Fold() (bool, error) {
	r.mu.Lock()
	root := r.root
	var chain []*Version // unfolded versions, oldest first
	for v := r.head; v != nil && v != root; v = v.parent {
		chain = append(chain, v)
	}
	slices.Reverse(chain)
	if len(chain) == 0 || root.pins.Load() > 0 {
		// A reader on the root reads every unchanged page from the file.
		r.mu.Unlock()
		return false, nil
	}
	last := len(chain) - 1
	for i, v := range chain {
		if v.pins.Load() > 0 {
			last = i
			break
		}
	}
	fold := chain[:last+1]
	target := fold[last]
	r.mu.Unlock()

	if err := r.writeFold(fold, target); err != nil {
		return false, fmt.Errorf("fold to TXID %s: %w", target.TXID, err)
	}
	st := r.stateFor(target)
	if err := writeState(r.path, &st); err != nil {
		return false, fmt.Errorf("fold to TXID %s: %w", target.TXID, err)
	}

	r.mu.Lock()
	for _, v := range fold {
		v.folded = true
		v.seg.close()
	}
	target.parent = nil // let older versions be collected
	target.base.segs = slices.DeleteFunc(target.base.segs, func(s *segment) bool { return s.f == nil })
	r.root = target
	r.state = st
	r.mu.Unlock()

	for _, v := range fold {
		if err := v.seg.remove(); err != nil {
			return true, err
		}
	}
	return true, nil
}

// writeFold performs steps 1 and 2 of Fold.
func (r *Replica) writeFold(fold []*Version, target *Version) error {
	for _, v := range fold {
		if err := v.seg.f.Sync(); err != nil {
			return fmt.Errorf("sync segment: %w", err)
		}
	}
	wf, err := os.OpenFile(r.path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer wf.Close()

	ps := int64(target.PageSize)
	buf := make([]byte, ps)
	written := make(map[uint32]bool)
	// Newest first, so each page is written once, with its newest image.
	for i := len(fold) - 1; i >= 0; i-- {
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
	// Page 1 always, even when no version changed it (a WAL primary does not
	// bump its change counter): it carries the new counter and size.
	r.mu.RLock()
	err = target.readPage(1, buf)
	r.mu.RUnlock()
	if err != nil {
		return err
	}
	target.patchHeader(buf, 0)
	if _, err := wf.WriteAt(buf, 0); err != nil {
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

func (r *Replica) stateFor(v *Version) State {
	return State{
		Source: r.state.Source, TXID: v.TXID, Timestamp: v.Timestamp, Checksum: v.Checksum,
		PageSize: v.PageSize, Commit: v.Commit, Counter: v.Counter, Page1Checksum: v.Page1Checksum,
	}
}
