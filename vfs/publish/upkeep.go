package publish

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/store"
)

// upkeep runs, after a successful publish, the periodic snapshot and the
// retention pass that Options ask for, and records them in res.
func (p *Publisher) upkeep(ctx context.Context, res *Result) {
	now := time.Now()
	var errs []error
	if p.opts.SnapshotInterval > 0 {
		snap, err := p.periodicSnapshot(ctx, res.Timestamp, now)
		if err != nil {
			p.snapshotRetry = now.Add(upkeepRetry)
			errs = append(errs, fmt.Errorf("publish %s: periodic snapshot: %w", p.dbPath, err))
		}
		res.Periodic = snap
	}
	if p.opts.Retention > 0 {
		pass, err := p.retain(ctx, now)
		if err != nil {
			p.retentionRetry = now.Add(upkeepRetry)
			errs = append(errs, fmt.Errorf("publish %s: retention: %w", p.dbPath, err))
		}
		res.Retention = pass
	}
	res.UpkeepErr = errors.Join(errs...)
}

// periodicSnapshot writes the last published image again, as a snapshot at
// the position's TXID, when the newest snapshot in the store is older than
// SnapshotInterval and behind that TXID. The image is the state the store
// reaches at that TXID, so the snapshot needs no new TXID and no level-0
// file to announce it: followers that are up to date have nothing to
// apply, and bootstrapping ones take the newest snapshot.
func (p *Publisher) periodicSnapshot(ctx context.Context, ts, now time.Time) (*PeriodicSnapshot, error) {
	if !p.verified || now.Before(p.snapshotRetry) {
		// Unless the store is known to end with the position, a snapshot
		// at its TXID could stand beside someone else's files.
		return nil, nil
	}
	snaps, err := p.snapshots(ctx)
	if err != nil {
		return nil, err
	}
	reason := "the store has no snapshot"
	if len(snaps) > 0 {
		newest := newestSnapshot(snaps)
		age := now.Sub(newest.ModTime)
		if newest.MaxTXID >= p.pos.TXID || age < p.opts.SnapshotInterval {
			return nil, nil
		}
		reason = fmt.Sprintf("the newest snapshot, %s, is %s old", newest.Name(), age.Round(time.Second))
	}

	txid := p.pos.TXID
	name := ltx.FormatFilename(1, txid)
	img, f, err := OpenImage(p.wd.path(p.pos.Image))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	stats, err := writePending(p.wd.path(pendingFile), func(f *os.File) (FileStats, error) {
		return WriteSnapshot(f, img, txid, ts, p.encodeOptions("snapshot", name))
	})
	if err != nil {
		return nil, errors.Join(err, p.wd.tidy(p.pos.Image, p.pos.Redo))
	}
	if stats.PostApplyChecksum != p.pos.Checksum {
		// The image is what every replica at this TXID holds; a snapshot
		// that says otherwise would fork them.
		return nil, errors.Join(
			fmt.Errorf("local image %s has checksum %s, the position says %s", p.pos.Image, stats.PostApplyChecksum, p.pos.Checksum),
			p.wd.tidy(p.pos.Image, p.pos.Redo))
	}
	info := store.FileInfo{Level: store.SnapshotLevel, MinTXID: 1, MaxTXID: txid, Size: stats.Size}

	// Recorded before the upload: the store then never holds it without
	// the position knowing it as ours (checkStore would take it for
	// someone else's file at our TXID and answer with yet another
	// snapshot). A record of a file whose upload failed names nothing in
	// the store and is harmless.
	ref := refOf(info)
	pos := p.pos
	pos.Snapshot = &ref
	if err := p.wd.save(pos); err != nil {
		return nil, errors.Join(err, p.wd.tidy(p.pos.Image, p.pos.Redo))
	}
	p.pos = pos
	err = p.upload(ctx, info)
	if err = errors.Join(err, p.wd.tidy(p.pos.Image, p.pos.Redo)); err != nil {
		return nil, err
	}
	info.ModTime = time.Now() // until a listing says when the store wrote it
	p.addSnapshot(info)
	return &PeriodicSnapshot{File: info, Pages: stats.Pages, Reason: reason}, nil
}

// snapshots are the store's snapshots, listed once and then kept up to
// date by this publisher.
func (p *Publisher) snapshots(ctx context.Context) ([]store.FileInfo, error) {
	if p.snapsKnown {
		return p.snaps, nil
	}
	l9, err := p.st.ListAfter(ctx, store.SnapshotLevel, 0)
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	p.noteSnapshots(l9)
	return p.snaps, nil
}

// noteSnapshots remembers a listing of the snapshots. A store that does not
// report ModTime gets, for each file, the time this publisher first saw
// it: ages are then underestimated, which delays snapshots and deletions
// but never hastens them.
func (p *Publisher) noteSnapshots(l9 []store.FileInfo) {
	seen := make(map[store.FileKey]time.Time, len(p.snaps))
	for _, f := range p.snaps {
		seen[f.Key()] = f.ModTime
	}
	now := time.Now()
	snaps := slices.Clone(l9)
	for i, f := range snaps {
		if !f.ModTime.IsZero() {
			continue
		}
		if t, ok := seen[f.Key()]; ok {
			snaps[i].ModTime = t
		} else {
			snaps[i].ModTime = now
		}
	}
	p.snaps, p.snapsKnown = snaps, true
}

// addSnapshot records a snapshot this publisher wrote.
func (p *Publisher) addSnapshot(f store.FileInfo) {
	if !p.snapsKnown {
		return // the next listing will bring it with the others
	}
	p.snaps = slices.DeleteFunc(p.snaps, func(g store.FileInfo) bool { return g.Name() == f.Name() })
	p.snaps = append(p.snaps, f)
}

// newestSnapshot is the snapshot that reaches furthest (zero for none).
func newestSnapshot(snaps []store.FileInfo) store.FileInfo {
	var newest store.FileInfo
	for _, f := range snaps {
		if f.MaxTXID > newest.MaxTXID {
			newest = f
		}
	}
	return newest
}
