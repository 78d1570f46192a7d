package publish

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/store"
)

// Options configure a Publisher. The zero value is usable.
type Options struct {
	// WorkDir keeps the publisher's position and the last published image
	// (a full copy of the database). Default: "<db>-walrust-publish" next
	// to the database.
	WorkDir string

	// Progress, if set, receives progress reports of phases of at least
	// ProgressThreshold bytes (default DefaultProgressThreshold).
	Progress          func(Progress)
	ProgressThreshold int64

	// OnPublish is called by Run after each publish that wrote or deleted
	// files (a change, a periodic snapshot, a retention pass); OnError
	// after each publish that failed, and with Result.UpkeepErr after one
	// whose upkeep failed (default: the standard logger). Run keeps going
	// after an error.
	OnPublish func(Result)
	OnError   func(error)
	// OnRecover is called by Run when a publish succeeds after failed
	// ones: since the first of them, and how many failed.
	OnRecover func(since time.Time, failed int)

	// BusyTimeout is how long a copy waits for a rollback-mode writer to
	// finish before the publish fails (and is retried by Run). Default 5s.
	BusyTimeout time.Duration

	// SnapshotInterval, if positive, bounds the age of the newest snapshot:
	// after a publish that finds it older (by the store's ModTime) and
	// behind the published TXID, the published state is written again as a
	// snapshot, so that a new replica does not replay every change since
	// the first one. Litestream's default is 24h.
	SnapshotInterval time.Duration

	// Retention, if positive, lets a publish delete the files that a
	// snapshot older than Retention makes unnecessary: a replica less than
	// Retention behind still catches up through level-0 files, an older
	// one starts over from the newest snapshot. Litestream's default is
	// 24h. See retention.go for what is never deleted.
	Retention time.Duration

	// NewLineage lets the first publish from a promoted database (see
	// Adopt) go ahead although the store has moved past the TXID it was
	// promoted at: it then publishes a snapshot after the store's head,
	// and every replica starts over from it. Without it that publish
	// fails with ErrForked.
	NewLineage bool
}

// Result describes one PublishOnce.
type Result struct {
	Changed  bool           // a file was published
	Empty    bool           // the database has no pages yet: nothing to publish
	File     store.FileInfo // the published file (zero when !Changed)
	Snapshot bool           // File is a level-9 snapshot
	Reason   string         // why a snapshot was written
	Pages    int            // page frames in File

	// The position after this publish (the previous one when nothing
	// changed): TXID, database checksum, page size and size in pages.
	TXID     ltx.TXID
	Checksum ltx.Checksum
	PageSize uint32
	Commit   uint32

	Timestamp time.Time     // when the copy was taken; File's header carries it
	Duration  time.Duration // the whole publish

	// Upkeep after the publish (Options.SnapshotInterval and Retention):
	// a periodic snapshot and a retention pass, nil when none ran. They run
	// after a publish that changed nothing too.
	Periodic  *PeriodicSnapshot
	Retention *RetentionPass
	// UpkeepErr says why upkeep failed; the publish itself succeeded. Run
	// passes it to OnError. Upkeep is tried again a minute later at most.
	UpkeepErr error
}

// PeriodicSnapshot is a snapshot of the published state (no new TXID),
// written because the newest one had grown older than SnapshotInterval.
type PeriodicSnapshot struct {
	File   store.FileInfo
	Pages  int
	Reason string // e.g. "the newest snapshot, 0000000000000001-0000000000000010.ltx, is 24h0m3s old"
}

// upkeepRetry is how long a failed periodic snapshot or retention pass
// waits before it is tried again, so that a store that refuses them is not
// asked again at every publish.
const upkeepRetry = time.Minute

// Publisher publishes one SQLite database to one store. Its methods are
// safe for concurrent use; publishes run one at a time.
type Publisher struct {
	dbPath string
	st     store.Store
	opts   Options
	src    *sql.DB
	wd     *workDir

	mu       sync.Mutex
	closed   bool
	pos      position
	hasPos   bool
	noPos    string // why there is no usable position
	verified bool   // the store was seen to end with pos.Last

	// The database's fingerprint before the last copy that found the
	// database published, and when that copy ran: while both hold, Run's
	// publishes need no copy.
	lastPrint fingerprint
	printOK   bool
	lastCheck time.Time

	// The store's snapshots as last listed (kept up to date with what this
	// publisher writes and deletes), so that upkeep needs no LIST of its
	// own: their ModTimes age them.
	snaps      []store.FileInfo
	snapsKnown bool
	// No periodic snapshot, no retention pass before these times (after
	// a failure).
	snapshotRetry, retentionRetry time.Time
}

// New prepares to publish the database at dbPath (rollback or WAL mode) to
// st. It takes the work directory's lock: a second publisher on the same
// work directory fails here. Close releases it.
func New(dbPath string, st store.Store, opts Options) (*Publisher, error) {
	abs, err := filepath.Abs(dbPath)
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", dbPath, err)
	}
	if opts.WorkDir == "" {
		opts.WorkDir = abs + "-walrust-publish"
	}
	if opts.ProgressThreshold == 0 {
		opts.ProgressThreshold = DefaultProgressThreshold
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 5 * time.Second
	}
	src, err := openSource(abs, opts.BusyTimeout)
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", dbPath, err)
	}
	wd, err := openWorkDir(opts.WorkDir)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("publish %s: %w", dbPath, err), src.Close())
	}
	p := &Publisher{dbPath: abs, st: st, opts: opts, src: src, wd: wd}
	if p.pos, p.hasPos, p.noPos, err = wd.load(); err == nil {
		err = wd.tidy(p.pos.Image)
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("publish %s: %w", dbPath, err), src.Close(), wd.close())
	}
	return p, nil
}

// Close releases the database and the work directory. A publish in
// progress finishes first; stop Run (cancel its context and let it return)
// before closing, or its next publishes fail.
func (p *Publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	return errors.Join(p.src.Close(), p.wd.close())
}

// Run publishes now and then every interval until ctx is done. A publish
// that has started when ctx is done is finished, not abandoned; then Run
// returns nil. Failed publishes go to Options.OnError and are retried at
// the next tick, but for ErrForked, which Run returns.
func (p *Publisher) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		return fmt.Errorf("publish %s: interval must be positive, not %s", p.dbPath, interval)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var failedSince time.Time // the first failure of the current run of them
	failed := 0
	for {
		began := time.Now()
		res, err := p.PublishOnce(context.WithoutCancel(ctx))
		if errors.Is(err, ErrForked) {
			return err // no later publish can fix that
		}
		switch {
		case err != nil:
			if failed == 0 {
				failedSince = began
			}
			failed++
		case failed > 0:
			if p.opts.OnRecover != nil {
				p.opts.OnRecover(failedSince, failed)
			}
			failed = 0
		}
		switch {
		case err != nil && p.opts.OnError != nil:
			p.opts.OnError(err)
		case err != nil:
			log.Print(err)
		default:
			if res.UpkeepErr != nil && p.opts.OnError != nil {
				p.opts.OnError(res.UpkeepErr)
			} else if res.UpkeepErr != nil {
				log.Print(res.UpkeepErr)
			}
			if (res.Changed || res.Periodic != nil || res.Retention != nil) && p.opts.OnPublish != nil {
				p.opts.OnPublish(res)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// PublishOnce takes a consistent copy of the database and publishes what
// changed since the last publish: a level-0 file with the changed pages, a
// level-9 snapshot when there is no usable position (first publish, page
// size change, a store that is ahead of or disagrees with the position),
// or nothing when nothing changed. Then it does the upkeep Options ask for
// (a periodic snapshot, a retention pass); their failures go to
// Result.UpkeepErr, not err.
func (p *Publisher) PublishOnce(ctx context.Context) (Result, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return Result{}, fmt.Errorf("publish %s: publisher is closed", p.dbPath)
	}
	start := time.Now()
	res, err := p.publish(ctx)
	if err != nil {
		err = fmt.Errorf("publish %s: %w", p.dbPath, err)
		// Leave only the committed position behind.
		err = errors.Join(err, p.wd.tidy(p.pos.Image))
	} else if !res.Empty {
		p.upkeep(ctx, &res)
	}
	res.Duration = time.Since(start)
	return res, err
}

// publish is PublishOnce without the upkeep, under p.mu.
func (p *Publisher) publish(ctx context.Context) (res Result, err error) {
	ts := time.Now()
	fp, fpOK := takeFingerprint(p.dbPath)
	if fpOK && p.printOK && fp == p.lastPrint && p.verified && ts.Sub(p.lastCheck) < fullCheckEvery {
		return p.unchanged(ts), nil
	}
	p.printOK = false
	defer func() {
		// Only a publish that leaves the store holding this copy may
		// vouch for the fingerprint taken before it.
		if err == nil && !res.Empty {
			p.lastPrint, p.printOK, p.lastCheck = fp, fpOK, ts
		}
	}()
	copyPath := p.wd.path(copyFile)
	err = copyDatabase(ctx, p.src, copyPath, phaseProgress(p.opts.Progress, p.opts.ProgressThreshold, "copy", ""))
	if errors.Is(err, errEmptyDatabase) {
		res = p.unchanged(ts)
		res.Empty = true
		return res, nil
	} else if err != nil {
		return Result{}, err
	}
	cur, curFile, err := OpenImage(copyPath)
	if err != nil {
		return Result{}, err
	}
	defer curFile.Close()

	reason := p.noPos
	if p.hasPos && p.pos.PageSize != cur.PageSize {
		reason = fmt.Sprintf("page size changed from %d to %d", p.pos.PageSize, cur.PageSize)
	}
	if reason == "" {
		stats, err := p.writeDelta(cur, ts)
		if err != nil {
			return Result{}, err
		}
		changed := stats.Pages > 0 || cur.Commit != p.pos.Commit
		if !changed && p.verified {
			return p.unchanged(ts), p.wd.tidy(p.pos.Image)
		}
		head, why, err := p.checkStore(ctx)
		if err != nil {
			return Result{}, err
		}
		if why == "" {
			p.verified = true
			if !changed {
				return p.unchanged(ts), p.wd.tidy(p.pos.Image)
			}
			return p.commit(ctx, stats, cur, ts, "")
		}
		return p.snapshot(ctx, cur, max(p.pos.TXID, head)+1, ts, why)
	}
	head, _, err := p.checkStore(ctx)
	if err != nil {
		return Result{}, err
	}
	next := head + 1
	if p.hasPos {
		next = max(p.pos.TXID, head) + 1
	}
	return p.snapshot(ctx, cur, next, ts, reason)
}

// unchanged is the Result of a publish that found nothing to do.
func (p *Publisher) unchanged(ts time.Time) Result {
	return Result{TXID: p.pos.TXID, Checksum: p.pos.Checksum, PageSize: p.pos.PageSize, Commit: p.pos.Commit, Timestamp: ts}
}

// encodeOptions are the EncodeOptions of one phase of a publish.
func (p *Publisher) encodeOptions(phase, file string) *EncodeOptions {
	return &EncodeOptions{
		SpillDir: p.wd.dir,
		Progress: phaseProgress(p.opts.Progress, p.opts.ProgressThreshold, phase, file),
	}
}

// writeDelta diffs cur against the last published image into the pending
// file.
func (p *Publisher) writeDelta(cur Image, ts time.Time) (FileStats, error) {
	prev, prevFile, err := OpenImage(p.wd.path(p.pos.Image))
	if err != nil {
		return FileStats{}, err
	}
	defer prevFile.Close()
	txid := p.pos.TXID + 1
	name := ltx.FormatFilename(txid, txid)
	return writePending(p.wd.path(pendingFile), func(f *os.File) (FileStats, error) {
		pre := ltx.Pos{TXID: p.pos.TXID, PostApplyChecksum: p.pos.Checksum}
		return WriteDelta(f, prev, cur, pre, txid, ts, p.encodeOptions("compare", name))
	})
}

// snapshot publishes cur as a level-9 snapshot at txid.
func (p *Publisher) snapshot(ctx context.Context, cur Image, txid ltx.TXID, ts time.Time, reason string) (Result, error) {
	name := ltx.FormatFilename(1, txid)
	stats, err := writePending(p.wd.path(pendingFile), func(f *os.File) (FileStats, error) {
		return WriteSnapshot(f, cur, txid, ts, p.encodeOptions("snapshot", name))
	})
	if err != nil {
		return Result{}, err
	}
	res, err := p.commit(ctx, stats, cur, ts, reason)
	if err != nil || txid == 1 {
		return res, err
	}
	return res, p.announce(ctx, txid, ts)
}

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

// commit uploads the pending file, then makes the copy the last published
// image and saves the new position. A crash between the upload and the
// saved position leaves the store ahead of the position, which the next
// publish answers with a snapshot.
func (p *Publisher) commit(ctx context.Context, stats FileStats, cur Image, ts time.Time, reason string) (Result, error) {
	hdr := stats.Header
	level := 0
	if hdr.IsSnapshot() {
		level = store.SnapshotLevel
	}
	info := store.FileInfo{Level: level, MinTXID: hdr.MinTXID, MaxTXID: hdr.MaxTXID, Size: stats.Size}
	if err := p.upload(ctx, info); err != nil {
		p.verified = false
		return Result{}, err
	}

	image := imageName(hdr.MaxTXID)
	if err := os.Rename(p.wd.path(copyFile), p.wd.path(image)); err != nil {
		return Result{}, fmt.Errorf("keep image: %w", err)
	}
	pos := position{
		TXID: hdr.MaxTXID, Checksum: stats.PostApplyChecksum,
		PageSize: cur.PageSize, Commit: cur.Commit,
		Image: image, Store: p.st.String(), Last: refOf(info),
		RetainedThrough: p.pos.RetainedThrough,
	}
	if err := p.wd.save(pos); err != nil {
		return Result{}, err
	}
	p.pos, p.hasPos, p.noPos, p.verified = pos, true, "", true
	if err := p.wd.tidy(image); err != nil {
		return Result{}, err
	}
	if level == store.SnapshotLevel {
		info.ModTime = time.Now() // until a listing says when the store wrote it
		p.addSnapshot(info)
	}
	return Result{
		Changed: true, File: info, Snapshot: level == store.SnapshotLevel, Reason: reason, Pages: stats.Pages,
		TXID: pos.TXID, Checksum: pos.Checksum, PageSize: pos.PageSize, Commit: pos.Commit,
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

// checkStore compares the store with the local position. head is the
// newest TXID among the store's level-0 files from the position on and its
// snapshots. reason is empty when the store ends exactly with the file that
// reached the position; otherwise it says why a snapshot must follow.
// Without a position only head matters.
func (p *Publisher) checkStore(ctx context.Context) (head ltx.TXID, reason string, err error) {
	var after ltx.TXID
	if p.hasPos {
		after = p.pos.TXID - 1
	}
	l0, err := p.st.ListAfter(ctx, 0, after)
	if err != nil {
		return 0, "", fmt.Errorf("check store: %w", err)
	}
	l9, err := p.st.ListAfter(ctx, store.SnapshotLevel, 0)
	if err != nil {
		return 0, "", fmt.Errorf("check store: %w", err)
	}
	p.noteSnapshots(l9)
	last := p.pos.Last.info()
	var found bool
	var other *store.FileInfo
	for _, f := range append(l0, l9...) {
		head = max(head, f.MaxTXID)
		switch {
		case p.pos.Last.is(f):
			found = true
		case p.pos.ours(f):
		case p.hasPos && f.MaxTXID == p.pos.TXID:
			other = &f
		}
	}
	switch {
	case !p.hasPos:
		return head, "", nil
	case p.pos.Promoted:
		return p.checkPromoted(head)
	case head > p.pos.TXID:
		return head, fmt.Sprintf("the store is ahead of the local position (TXID %d > %d)", head, p.pos.TXID), nil
	case !found:
		return head, fmt.Sprintf("the store no longer holds %s, the last file published from here", last), nil
	case other != nil:
		return head, fmt.Sprintf("the store holds %s, which is not the file published from here", other), nil
	}
	return head, "", nil
}
