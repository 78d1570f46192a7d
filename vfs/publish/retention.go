package publish

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/store"
)

// RetentionPass is what one retention pass deleted.
type RetentionPass struct {
	Deleted int            // files deleted
	Cover   store.FileInfo // the newest snapshot older than Retention: the files were at or before its TXID
}

// retain deletes the files that the newest snapshot older than Retention
// makes unnecessary (see planRetention). It lists every level, so it runs
// only when such a snapshot exists beyond the one that covered the last
// completed pass: with the default settings, once a day. It returns nil
// when it deleted nothing.
func (p *Publisher) retain(ctx context.Context, now time.Time) (*RetentionPass, error) {
	if !p.verified || now.Before(p.retentionRetry) {
		// A store not known to end with the position may be someone
		// else's lineage, not ours to prune.
		return nil, nil
	}
	snaps, err := p.snapshots(ctx)
	if err != nil {
		return nil, err
	}
	if cover, ok := coverOf(snaps, now, p.opts.Retention); !ok || cover.MaxTXID <= p.pos.RetainedThrough {
		return nil, nil
	}

	levels := make([][]store.FileInfo, store.SnapshotLevel+1)
	for level := range levels {
		if levels[level], err = p.st.ListAfter(ctx, level, 0); err != nil {
			return nil, fmt.Errorf("list: %w", err)
		}
	}
	p.noteSnapshots(levels[store.SnapshotLevel])
	levels[store.SnapshotLevel] = p.snaps // with every ModTime known
	cover, del, ok := planRetention(levels, p.pos, now, p.opts.Retention)
	if !ok {
		return nil, nil
	}

	pass := &RetentionPass{Cover: cover}
	gone := make(map[string]bool)
	defer func() {
		p.snaps = slices.DeleteFunc(p.snaps, func(f store.FileInfo) bool { return f.Level == store.SnapshotLevel && gone[f.Name()] })
	}()
	for _, f := range del {
		if err := p.st.Delete(ctx, f); err != nil {
			return passOrNil(pass), fmt.Errorf("%d of %d files covered by %s deleted: %w", pass.Deleted, len(del), cover, err)
		}
		pass.Deleted++
		if f.Level == store.SnapshotLevel {
			gone[f.Name()] = true
		}
	}
	pos := p.pos
	pos.RetainedThrough = cover.MaxTXID
	if err := p.wd.save(pos); err != nil {
		return passOrNil(pass), err
	}
	p.pos = pos
	return passOrNil(pass), nil
}

func passOrNil(pass *RetentionPass) *RetentionPass {
	if pass.Deleted == 0 {
		return nil
	}
	return pass
}

// planRetention picks, from a listing of levels 0 to 9 (levels[i] is level
// i), the files that may be deleted: those at or before the TXID of cover,
// the newest snapshot older than retention. A replica less than retention
// behind is past that TXID, so it needs none of them; an older one
// re-bootstraps from the newest snapshot, as it would after Litestream's
// retention. Levels 1 to 8 (Litestream's compactions) count as level 0.
//
// Never deleted: the newest snapshot, the newest level-0 file (a follower
// that finds no level-0 file at its own TXID or later takes the store for
// wiped), and the files the position names as ours. ok is false when there
// is no such cover at or before the position.
//
// The files come in TXID order, so that a pass cut short leaves a store
// whose files still connect from some TXID onwards.
func planRetention(levels [][]store.FileInfo, pos position, now time.Time, retention time.Duration) (cover store.FileInfo, del []store.FileInfo, ok bool) {
	snaps := levels[store.SnapshotLevel]
	cover, ok = coverOf(snaps, now, retention)
	if !ok || cover.MaxTXID > pos.TXID {
		return store.FileInfo{}, nil, false
	}
	newestSnap := newestSnapshot(snaps).MaxTXID
	var newestL0 ltx.TXID
	for _, f := range levels[0] {
		newestL0 = max(newestL0, f.MaxTXID)
	}
	for level, files := range levels {
		for _, f := range files {
			switch {
			case f.MaxTXID > cover.MaxTXID, pos.ours(f):
			case level == 0 && f.MaxTXID == newestL0:
			case level == store.SnapshotLevel && f.MaxTXID == newestSnap:
			default:
				del = append(del, f)
			}
		}
	}
	slices.SortStableFunc(del, func(a, b store.FileInfo) int {
		if a.MaxTXID != b.MaxTXID {
			return cmp.Compare(a.MaxTXID, b.MaxTXID)
		}
		return a.Level - b.Level
	})
	return cover, del, true
}

// coverOf is the newest snapshot at least retention old.
func coverOf(snaps []store.FileInfo, now time.Time, retention time.Duration) (store.FileInfo, bool) {
	var cover store.FileInfo
	for _, f := range snaps {
		if !f.ModTime.IsZero() && now.Sub(f.ModTime) >= retention && f.MaxTXID > cover.MaxTXID {
			cover = f
		}
	}
	return cover, cover.MaxTXID > 0
}
