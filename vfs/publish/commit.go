package publish

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/store"
)

// announce publishes, next to a snapshot at txid, a level-0 file for the
// same TXID holding every page. An idle follower lists only level 0 after
// its own TXID, one request per poll; without this file it would not see
// that the store moved on through a snapshot alone (a page size change, a
// lost position). It carries no database checksums, because what it
// follows is not known here: a follower whose pages do not match its page
// size re-bootstraps from the snapshot; otherwise, holding every page, it
// brings any previous state to this one.
func (p *Publisher) announce(ctx context.Context, txid ltx.TXID, ts time.Time) error {
	cur, f, err := OpenImage(p.wd.path(p.pos.Image))
	if err != nil {
		return err
	}
	defer f.Close()
	empty := Image{R: bytes.NewReader(nil), PageSize: cur.PageSize}
	name := ltx.FormatFilename(txid, txid)
	stats, err := writePending(p.wd.path(pendingFile), func(f *os.File) (FileStats, error) {
		opts := p.encodeOptions("announce", name)
		opts.NoChecksum = true
		return WriteDelta(f, empty, cur, ltx.Pos{TXID: txid - 1}, txid, ts, opts)
	})
	if err != nil {
		return err
	}
	info := store.FileInfo{Level: 0, MinTXID: txid, MaxTXID: txid, Size: stats.Size}
	if err := p.upload(ctx, info); err != nil {
		return err
	}
	also := refOf(info)
	pos := p.pos
	pos.Also = &also
	if err := p.wd.save(pos); err != nil {
		return err
	}
	p.pos = pos
	// Uploaded and recorded, the file is of no more use here, and it is as
	// large as the database: the next commit's tidy would remove it, but
	// that waits for a change. If this fails, that tidy tries again.
	os.Remove(p.wd.path(pendingFile))
	return nil
}

// writePending creates the pending LTX file, fills it with write and makes
// it durable.
func writePending(path string, write func(*os.File) (FileStats, error)) (FileStats, error) {
	f, err := os.Create(path)
	if err != nil {
		return FileStats{}, fmt.Errorf("pending file: %w", err)
	}
	stats, err := write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("pending file: %w", cerr)
	}
	return stats, err
}

// commit uploads the pending file, then saves the position that reaches
// its TXID, naming the file as the redo file, and brings the image to it
// (redo.go). A crash between the upload and the saved position leaves the
// store ahead of the position, which the next publish answers with a
// snapshot; one after it leaves an image that the next load finishes.
func (p *Publisher) commit(ctx context.Context, stats FileStats, r *reading, ts time.Time, reason string) (_ Result, err error) {
	compared := ""
	if !stats.Header.IsSnapshot() {
		compared = r.whole
	}
	hdr := stats.Header
	level := 0
	if hdr.IsSnapshot() {
		level = store.SnapshotLevel
	}
	info := store.FileInfo{Level: level, MinTXID: hdr.MinTXID, MaxTXID: hdr.MaxTXID, Size: stats.Size}
	if err := r.release(); err != nil {
		return Result{}, err
	}
	if p.barrier != nil {
		defer func() {
			if err != nil {
				// Writers went on before the upload and the log may
				// restart past the position (checkpoint.go).
				p.chain = false
			}
		}()
	}
	if err := p.endBarrier(ctx, true); err != nil {
		return Result{}, err
	}
	if err := p.upload(ctx, info); err != nil {
		p.verified = false
		return Result{}, err
	}
	image := p.pos.Image
	if !p.hasPos || image == "" {
		image = imageName(hdr.MaxTXID)
	}
	pos := position{
		TXID: hdr.MaxTXID, Checksum: stats.PostApplyChecksum,
		PageSize: hdr.PageSize, Commit: hdr.Commit,
		Image: image, Redo: redoName(hdr.MaxTXID), WAL: r.pos(), Store: p.st.String(), Last: refOf(info),
		RetainedThrough: p.pos.RetainedThrough,
	}
	// The file is in the store: from here a local error (a full disk) must
	// not cost a snapshot, which sends every replica the whole database
	// again. What is left to do here is kept (due) and finished by the
	// next publish, first.
	p.due = &pos
	if ok, err := p.settle(); !ok {
		p.hasPos, p.verified, p.chain = false, false, false
		p.noPos = fmt.Sprintf("local position could not be brought to TXID %d (%v)", pos.TXID, err)
		return Result{}, err
	}
	p.pos, p.hasPos, p.noPos, p.verified = pos, true, "", true
	p.chain = r.walMode() && p.held != nil
	if err := p.wd.tidy(pos.Image, pos.Redo); err != nil {
		return Result{}, err
	}
	if level == store.SnapshotLevel {
		info.ModTime = time.Now() // until a listing says when the store wrote it
		p.addSnapshot(info)
	}
	return Result{
		Changed: true, File: info, Snapshot: level == store.SnapshotLevel, Reason: reason, Pages: stats.Pages,
		Compared: compared,
		TXID:     pos.TXID, Checksum: pos.Checksum, PageSize: pos.PageSize, Commit: pos.Commit,
		Timestamp: ts,
	}, nil
}

func (p *Publisher) upload(ctx context.Context, info store.FileInfo) error {
	f, err := os.Open(p.wd.path(pendingFile))
	if err != nil {
		return fmt.Errorf("upload %s: %w", info, err)
	}
	defer f.Close()
	r := &progressReader{r: f, total: info.Size,
		progress: phaseProgress(p.opts.Progress, p.opts.ProgressThreshold, "upload", info.Name())}
	if err := p.st.Put(ctx, info, r); err != nil {
		return fmt.Errorf("upload %s to %s: %w", info, p.st, err)
	}
	return nil
}

// settle records p.due, a position whose file is in the store, here: the
// pending file kept as its redo file, the position saved, and the image
// brought to it (redo.go). Every step may be done again, so a local error
// (one the system returned: a full disk, too many open files) keeps p.due
// for the next publish to settle first; until then publishes fail with it
// and publish nothing. Any other (a damaged redo file) gives it up, and the
// next publish writes a snapshot, as after a restart (workDir.load). It
// reports whether p.due is settled.
func (p *Publisher) settle() (bool, error) {
	pos := *p.due
	err := p.keep(pos)
	if err == nil {
		err = p.wd.save(pos)
	}
	// The position is saved: from here the image may change.
	if err == nil {
		err = applyRedo(p.wd.path(pos.Image), p.wd.path(sumsFile), p.wd.path(pos.Redo), pos.TXID)
	}
	var errno syscall.Errno
	if err != nil && errors.As(err, &errno) {
		return false, fmt.Errorf("%w (the store has TXID %d; it is recorded here at the next publish)", err, pos.TXID)
	}
	p.due = nil
	return err == nil, err
}

// keep makes the pending file pos's redo file, unless a settle that failed
// later did so already.
func (p *Publisher) keep(pos position) error {
	if _, err := os.Stat(p.wd.path(pos.Redo)); err == nil {
		return nil
	}
	_, err := p.wd.keepRedo(pos.TXID)
	return err
}
