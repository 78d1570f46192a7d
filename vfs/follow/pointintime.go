package follow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/replica"
	"github.com/walrust/walrust/vfs/store"
)

// A Point is a moment of a store's history: a TXID, or a time (see
// planTime for what a time means), or, when both are zero, the store's
// newest TXID.
type Point struct {
	TXID ltx.TXID
	Time time.Time
}

// IsZero says that p is the store's newest TXID.
func (p Point) IsZero() bool { return p.TXID == 0 && p.Time.IsZero() }

// String names p in messages: "TXID 42" (decimal, as walrust_txid()
// shows it), an RFC 3339 time, or "the newest TXID".
func (p Point) String() string {
	switch {
	case p.TXID != 0:
		return fmt.Sprintf("TXID %d", uint64(p.TXID))
	case !p.Time.IsZero():
		return p.Time.Format(time.RFC3339Nano)
	default:
		return "the newest TXID"
	}
}

// ParsePoint reads a point as as_of and walrust restore take it: a TXID in
// decimal (as walrust_txid() shows it), or in the 16 hex digits of LTX file
// names, or an RFC 3339 time. Sixteen decimal digits read as hex: that is
// the file names' form, and no store reaches TXID 10^15.
func ParsePoint(s string) (Point, error) {
	if txid, err := ParseTXID(s); err == nil {
		return Point{TXID: txid}, nil
	} else if isDigits(strings.TrimSpace(s)) {
		return Point{}, fmt.Errorf("as_of %q: %w", s, err)
	}
	if t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s)); err == nil {
		if t.IsZero() {
			return Point{}, fmt.Errorf("as_of %q: %w", s, errZeroTime)
		}
		return Point{Time: t}, nil
	}
	return Point{}, fmt.Errorf("as_of %q: want a TXID (decimal, or 16 hex digits) or an RFC 3339 time (2006-01-02T15:04:05Z)", s)
}

// errZeroTime refuses 0001-01-01T00:00:00Z: a Point with that time is the
// zero Point, the store's newest TXID, the opposite of what it asks for.
var errZeroTime = errors.New("the time 0001-01-01T00:00:00Z is older than anything a store holds")

// ParseTime reads an RFC 3339 time as walrust restore --time takes it.
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
	switch {
	case err != nil:
		return time.Time{}, fmt.Errorf("%q: want an RFC 3339 time (2025-03-01T12:00:00Z)", s)
	case t.IsZero():
		return time.Time{}, fmt.Errorf("%q: %w", s, errZeroTime)
	}
	return t, nil
}

// ParseTXID reads a TXID in decimal or as 16 hex digits.
func ParseTXID(s string) (ltx.TXID, error) {
	t := strings.TrimSpace(s)
	var n uint64
	var err error
	switch {
	case len(t) == 16 && isHex(t):
		n, err = strconv.ParseUint(t, 16, 64)
	case isDigits(t):
		n, err = strconv.ParseUint(t, 10, 64)
	default:
		return 0, fmt.Errorf("%q is not a TXID: want a decimal number or 16 hex digits", s)
	}
	switch {
	case err != nil:
		return 0, fmt.Errorf("%q is not a TXID: %w", s, err)
	case n == 0:
		return 0, fmt.Errorf("%q is not a TXID: TXIDs start at 1", s)
	}
	return ltx.TXID(n), nil
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

func isHex(s string) bool {
	return s != "" && strings.Trim(s, "0123456789abcdefABCDEF") == ""
}

// BuildOptions configure BuildAt.
type BuildOptions struct {
	// MaxSize bounds the database any file may describe; 0:
	// replica.DefaultMaxSize.
	MaxSize int64
	Logger  *slog.Logger // nil: discard
	// OnEvent, if set, is told of each download and apply, as a
	// follower's OnEvent is (EventBootstrapStart, EventProgress for a long
	// snapshot download, EventSnapshotInstalled, EventApplied).
	OnEvent func(Event)
	// OnPlan, if set, is told once what the build will download: the
	// TXID it reaches and the files, in order (the first one the
	// snapshot), before any download.
	OnPlan func(target ltx.TXID, files []store.FileInfo)
}

// buildAttempts bounds how often BuildAt tries again after an error of
// the store or a local one (a dropped connection); a corrupt file ends it
// at once. buildRetryWait is the pause before the second try, doubling.
// Variables so that tests can shorten them.
var (
	buildAttempts  = 3
	buildRetryWait = 500 * time.Millisecond
)

// BuildAt makes a new replica at path that holds exactly the database of
// st as of at: the newest snapshot at or before it and the files after it,
// up to it, through whatever levels still hold them. Nothing may be at
// path (nor its replica files) yet. It is built by a Follower that never
// polls: the same plan, download and verification as a live replica's, so
// that a corrupt file is rejected the same way. The replica is returned
// open and folded; the caller closes it, and it is never followed.
// r.Head() tells what it reached: the TXID, and the commit time the LTX
// header gives. On an error nothing is left at path.
func BuildAt(ctx context.Context, st store.Reader, path string, at Point, opts BuildOptions) (*replica.Replica, error) {
	if at.TXID != 0 && !at.Time.IsZero() {
		return nil, fmt.Errorf("build %s: give a TXID or a time, not both", path)
	}
	if err := refuseExisting(path); err != nil {
		return nil, err
	}
	cat, err := listCatalog(ctx, st, func(store.FileInfo) bool { return false })
	if err != nil {
		return nil, fmt.Errorf("%s as of %s: list: %w", st, at, err)
	}
	p, err := planPoint(ctx, st, cat, at)
	if err != nil {
		return nil, fmt.Errorf("%s as of %s: %w", st, at, err)
	}
	if opts.OnPlan != nil {
		opts.OnPlan(p.reach, append([]store.FileInfo{*p.snapshot}, p.steps...))
	}
	r, err := replica.Open(path, st.String())
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", path, err)
	}
	if err := build(ctx, r, st, p, at, opts); err != nil {
		r.Close()
		removeBuilt(path)
		return nil, fmt.Errorf("%s as of %s: %w", st, at, err)
	}
	return r, nil
}

// build carries out p into r. After an error that may pass (the store's,
// or a local one) it lists the store again and goes on from where the last
// try got to, to the same TXID: a file that retention deleted meanwhile
// may be covered by a compaction.
func build(ctx context.Context, r *replica.Replica, st store.Reader, p plan, at Point, opts BuildOptions) error {
	f := newFollower(r, st, Options{Interval: time.Hour, MaxSize: opts.MaxSize, Logger: opts.Logger, OnEvent: opts.OnEvent})
	target := p.reach
	wait := buildRetryWait
	var err error
	for attempt := 1; attempt <= buildAttempts; attempt++ {
		if attempt > 1 {
			f.log.Warn("building the point-in-time replica failed; trying again", "attempt", attempt, "err", err)
			select {
			case <-ctx.Done():
				return errors.Join(err, ctx.Err())
			case <-time.After(wait):
			}
			wait *= 2
			if p, err = replan(ctx, st, r.Head(), target); err != nil {
				continue
			}
		}
		if err = f.follow(ctx, p); err == nil {
			break
		}
		if len(f.bad) > 0 || len(f.broken) > 0 || ctx.Err() != nil {
			// A corrupt file, or one that does not follow: the plan was
			// the only way to the point, and the file will not change.
			return err
		}
	}
	if err != nil {
		return fmt.Errorf("%w (gave up after %d attempts)", err, buildAttempts)
	}
	h := r.Head()
	switch {
	case h == nil || h.TXID != target:
		return fmt.Errorf("reached %s instead of TXID %d", headTXIDOf(h), uint64(target))
	case !at.Time.IsZero() && !h.Timestamp.Before(at.Time):
		// The headers read to plan said otherwise: the store changed.
		return fmt.Errorf("TXID %d was committed at %s, not before %s: the store changed meanwhile",
			uint64(h.TXID), h.Timestamp.UTC().Format(time.RFC3339Nano), at.Time.Format(time.RFC3339Nano))
	}
	if _, err := r.Fold(); err != nil {
		return fmt.Errorf("fold: %w", err)
	}
	return nil
}

// replan lists the store again and plans from head (nil: from nothing) to
// target.
func replan(ctx context.Context, st store.Reader, head *replica.Version, target ltx.TXID) (plan, error) {
	cat, err := listCatalog(ctx, st, func(store.FileInfo) bool { return false })
	if err != nil {
		return plan{}, fmt.Errorf("list %s: %w", st, err)
	}
	if head == nil {
		return planTXID(ctx, st, cat, target)
	}
	p := cat.chainFrom(head.TXID, endingPast(target))
	if p.reach != target {
		return plan{}, fmt.Errorf("the store no longer leads from TXID %d to TXID %d", uint64(head.TXID), uint64(target))
	}
	return p, nil
}

func headTXIDOf(v *replica.Version) string {
	if v == nil {
		return "nothing"
	}
	return fmt.Sprintf("TXID %d", uint64(v.TXID))
}

// builtFiles are the files a replica at path is made of; BuildAt makes
// all of them, so it owns them, and removes them on a failure.
func builtFiles(path string) []string {
	return []string{path, path + "-replica-state", path + "-replica-log", path + "-replica-lock"}
}

func refuseExisting(path string) error {
	for _, p := range builtFiles(path) {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("build %s: %s exists already; a point-in-time replica is built only where nothing is", path, p)
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("build %s: %w", path, err)
		}
	}
	return nil
}

func removeBuilt(path string) {
	for _, p := range builtFiles(path) {
		os.RemoveAll(p)
	}
}
