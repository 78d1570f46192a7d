package publish

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/store"
)

// Options configure a Publisher. The zero value is usable.
type Options struct {
	// WorkDir keeps the publisher's position, the image of the last
	// published state (as large as the database) with its page checksums,
	// and the last published file. Default: "<db>-walrust-publish" next to
	// the database.
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

	// BusyTimeout is how long a publish waits for a rollback-mode writer
	// to finish (and a TRUNCATE checkpoint for readers) before it fails
	// (and is retried by Run). Default 5s.
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
	// Compared says why this publish of a WAL database read and compared
	// the whole database instead of following the log (the log did not
	// vouch for the change: it was restarted unseen, the database file
	// was replaced, ...). A rollback-journal database is always compared.
	Compared string
	Pages    int // page frames in File

	// The position after this publish (the previous one when nothing
	// changed): TXID, database checksum, page size and size in pages.
	TXID     ltx.TXID
	Checksum ltx.Checksum
	PageSize uint32
	Commit   uint32

	Timestamp time.Time     // when the database was read; File's header carries it
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
	wd     *workDir

	// mu guards everything below; publishes run under it.
	mu       sync.Mutex
	closed   bool
	src      *sql.DB  // the database's connections (source.go)
	srcFile  *os.File // the publisher's one descriptor of that file, closed after src
	srcIno   uint64   // the database file they opened
	pos      position
	hasPos   bool
	noPos    string // why there is no usable position
	verified bool   // the store was seen to end with pos.Last
	// due is a position whose file is in the store and that a local error
	// kept commit from recording here (settle): the next publish does.
	due *position

	// held is the read transaction kept open between publishes of a
	// WAL-mode database, and chain says that it (or those it was handed
	// over from) has been open since pos.WAL was read (walfollow.go).
	held  *sql.Conn
	chain bool
	// barrier holds the write lock during a publish that checkpoints
	// (checkpoint.go).
	barrier *sql.Conn

	// The database's fingerprint before the last reading that found the
	// database published, and when that reading ran: while both hold,
	// Run's publishes read nothing.
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
	src, srcFile, srcIno, err := openSource(abs, opts.BusyTimeout)
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", dbPath, err)
	}
	wd, err := openWorkDir(opts.WorkDir)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("publish %s: %w", dbPath, err), closeSource(src, srcFile))
	}
	p := &Publisher{dbPath: abs, st: st, opts: opts, src: src, srcFile: srcFile, srcIno: srcIno, wd: wd}
	if p.pos, p.hasPos, p.noPos, err = wd.load(); err == nil {
		err = wd.tidy(p.pos.Image, p.pos.Redo)
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("publish %s: %w", dbPath, err), closeSource(src, srcFile), wd.close())
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
	err := endRead(p.held)
	p.held, p.chain = nil, false
	return errors.Join(err, closeSource(p.src, p.srcFile), p.wd.close())
}

// PublishOnce reads the database in a read transaction and publishes what
// changed since the last publish: a level-0 file with the changed pages, a
// level-9 snapshot when there is no usable position (first publish, page
// size change, a store that is ahead of or disagrees with the position),
// or nothing when nothing changed. Then it does the upkeep Options ask for
// (a periodic snapshot, a retention pass); their failures go to
// Result.UpkeepErr, not err. It fails with ErrLitestream for a database
// that Litestream replicates too.
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
		// Leave only the committed position behind, and what the one
		// due (settle) needs.
		keep := []string{p.pos.Image, p.pos.Redo}
		if p.due != nil {
			keep = append(keep, pendingFile, p.due.Image, p.due.Redo)
		}
		err = errors.Join(err, p.wd.tidy(keep...))
	} else if !res.Empty {
		p.upkeep(ctx, &res)
	}
	res.Duration = time.Since(start)
	return res, err
}

// publish is PublishOnce without the upkeep, under p.mu.
func (p *Publisher) publish(ctx context.Context) (res Result, err error) {
	if p.due != nil {
		due := *p.due
		ok, err := p.settle()
		if ok {
			p.pos, p.hasPos, p.noPos = due, true, ""
		} else if p.due != nil {
			return Result{}, err
		} else {
			p.noPos = fmt.Sprintf("local position could not be brought to TXID %d (%v)", due.TXID, err)
		}
	}
	ts := time.Now()
	fp, fpOK := takeFingerprint(p.dbPath, p.srcFile, p.srcIno)
	if fpOK && p.printOK && fp == p.lastPrint && p.verified && ts.Sub(p.lastCheck) < fullCheckEvery {
		return p.unchanged(ts), nil
	}
	p.printOK = false
	defer func() {
		// Only a publish that leaves the store holding what it read may
		// vouch for the fingerprint taken before it.
		if err == nil && !res.Empty {
			p.lastPrint, p.printOK, p.lastCheck = fp, fpOK, ts
		}
	}()
	p.barrier = p.startBarrier(ctx)
	barrier := p.barrier != nil
	defer func() {
		// A publish that uploaded ended the barrier before its upload
		// (commit.go); one that had nothing to upload ends it here.
		berr := p.endBarrier(ctx, err == nil)
		if berr != nil && err == nil {
			res.UpkeepErr = fmt.Errorf("publish %s: %w", p.dbPath, berr)
		}
		if err == nil && !barrier {
			if terr := p.truncateIfLong(ctx); terr != nil {
				res.UpkeepErr = fmt.Errorf("publish %s: %w", p.dbPath, terr)
			}
		}
	}()

	r, err := p.read(ctx)
	if errors.Is(err, errEmptyDatabase) {
		res = p.unchanged(ts)
		res.Empty = true
		return res, nil
	} else if err != nil {
		return Result{}, err
	}
	defer func() { err = errors.Join(err, r.close()) }()

	reason := p.noPos
	if p.hasPos && p.pos.PageSize != r.hdr.PageSize {
		reason = fmt.Sprintf("page size changed from %d to %d", p.pos.PageSize, r.hdr.PageSize)
	}
	if reason != "" {
		head, _, err := p.checkStore(ctx)
		if err != nil {
			return Result{}, err
		}
		next := head + 1
		if p.hasPos {
			next = max(p.pos.TXID, head) + 1
		}
		return p.snapshot(ctx, r, next, ts, reason)
	}
	var stats FileStats
	changed := false
	switch {
	case r.follow && r.scan.Commit == 0:
		// Nothing committed since the position.
	case r.follow:
		stats, err = p.writeWALDelta(r, r.scan.Commit, ts)
	default:
		stats, err = p.writeDelta(r, ts)
	}
	if err == nil {
		err = r.stillValid()
	}
	if err != nil {
		return Result{}, err
	}
	if stats.Header.MaxTXID != 0 {
		changed = stats.Pages > 0 || stats.Header.Commit != p.pos.Commit
	}
	if !changed && p.verified {
		return p.unchangedAt(r, ts)
	}
	head, why, err := p.checkStore(ctx)
	if err != nil {
		return Result{}, err
	}
	if why == "" {
		p.verified = true
		if !changed {
			return p.unchangedAt(r, ts)
		}
		return p.commit(ctx, stats, r, ts, "")
	}
	return p.snapshot(ctx, r, max(p.pos.TXID, head)+1, ts, why)
}

// unchanged is the Result of a publish that found nothing to do.
func (p *Publisher) unchanged(ts time.Time) Result {
	return Result{TXID: p.pos.TXID, Checksum: p.pos.Checksum, PageSize: p.pos.PageSize, Commit: p.pos.Commit, Timestamp: ts}
}

// unchangedAt is unchanged after reading r: the position moves to where r
// reached in the log (frames that changed nothing, a new generation of
// the log, a whole read), so that the next publish continues from there.
func (p *Publisher) unchangedAt(r *reading, ts time.Time) (Result, error) {
	w := r.pos()
	if !r.walMode() || (p.pos.WAL != nil && *p.pos.WAL == *w) {
		p.chain = r.walMode() && p.held != nil
		return p.unchanged(ts), p.wd.tidy(p.pos.Image, p.pos.Redo)
	}
	pos := p.pos
	pos.WAL = w
	if err := p.wd.save(pos); err != nil {
		return Result{}, err
	}
	p.pos = pos
	p.chain = p.held != nil
	return p.unchanged(ts), p.wd.tidy(p.pos.Image, p.pos.Redo)
}

// encodeOptions are the EncodeOptions of one phase of a publish.
func (p *Publisher) encodeOptions(phase, file string) *EncodeOptions {
	return &EncodeOptions{
		SpillDir: p.wd.dir,
		Progress: phaseProgress(p.opts.Progress, p.opts.ProgressThreshold, phase, file),
	}
}

// writeDelta compares the whole database, as r reads it, with the
// published state's page checksums into the pending file: the full
// compare.
func (p *Publisher) writeDelta(r *reading, ts time.Time) (FileStats, error) {
	cur, err := r.live()
	if err != nil {
		return FileStats{}, err
	}
	sums, err := os.Open(p.wd.path(sumsFile))
	if err != nil {
		return FileStats{}, fmt.Errorf("page checksums: %w", err)
	}
	defer sums.Close()
	txid := p.pos.TXID + 1
	name := ltx.FormatFilename(txid, txid)
	return writePending(p.wd.path(pendingFile), func(f *os.File) (FileStats, error) {
		pre := ltx.Pos{TXID: p.pos.TXID, PostApplyChecksum: p.pos.Checksum}
		return writeSumsDelta(f, sums, p.pos.Commit, cur, pre, txid, ts, p.encodeOptions("compare", name))
	})
}

// snapshot publishes the database as r reads it as a level-9 snapshot at
// txid.
func (p *Publisher) snapshot(ctx context.Context, r *reading, txid ltx.TXID, ts time.Time, reason string) (Result, error) {
	if err := r.readAll(); err != nil {
		return Result{}, err
	}
	cur, err := r.live()
	if err != nil {
		return Result{}, err
	}
	name := ltx.FormatFilename(1, txid)
	stats, err := writePending(p.wd.path(pendingFile), func(f *os.File) (FileStats, error) {
		return WriteSnapshot(f, cur, txid, ts, p.encodeOptions("snapshot", name))
	})
	if err == nil {
		err = r.stillValid()
	}
	if err != nil {
		return Result{}, err
	}
	res, err := p.commit(ctx, stats, r, ts, reason)
	if err != nil || txid == 1 {
		return res, err
	}
	return res, p.announce(ctx, txid, ts)
}
