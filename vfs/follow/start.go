package follow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/walrust/walrust/vfs/replica"
	"github.com/walrust/walrust/vfs/store"
)

// Config is how to follow one replica: everything the extension's URI and
// the command line can say about it.
type Config struct {
	// Source is the store to follow; empty means the one the replica's
	// state file names. Any spelling store.Check accepts.
	Source   string
	Interval time.Duration // between polls; at least MinInterval
	// MaxInterval and SnapshotCheckEvery: see Options.
	MaxInterval, SnapshotCheckEvery time.Duration
	// StoreTimeout bounds the wait for a new replica's store when Start
	// opens it (with ctx); 0: only ctx does.
	StoreTimeout time.Duration
	// CheckStore opens the store before a replica that exists is served
	// too, so that a wrong source (a missing bucket or directory, denied
	// access) fails Start instead of every poll; a store that does not
	// answer is still waited for. The command line sets it; the VFS
	// serves what it has at once.
	CheckStore bool
	MaxSize    int64  // see Options.MaxSize
	MaxHeld    int64  // see Options.MaxHeld
	Bootstrap  string // see Options.Bootstrap
	// Store is how to reach the store. A new replica keeps its endpoint,
	// region and path style in its state file; an open of a replica that
	// exists and gives none of the three uses those (see StoreFor).
	Store store.Options
	// OwnStoreOnly ignores the store options a state file keeps: they
	// come from Store (and the environment, and the source URL) alone,
	// as WALRUST_SOURCES requires.
	OwnStoreOnly bool
	Logger       *slog.Logger // nil: discard
	OnEvent      func(Event)  // see Options.OnEvent
}

// ErrNoSource is Start's error for a replica not made yet with no
// Config.Source to make it from.
var ErrNoSource = errors.New("no replica yet and no source to make it from")

// MinInterval is the shortest poll interval a replica may be given.
const MinInterval = 10 * time.Millisecond

// A Handle is a replica this process follows: the replica and the
// follower that keeps it current. Close stops both.
type Handle struct {
	*Follower
	Replica *replica.Replica
	// Source is the store followed, canonical (Replica.Source, read
	// before the follower could write the state).
	Source string
	// Existing says that the replica had a version when the follower
	// started: it was served as it was, before any poll.
	Existing bool
}

// Start opens the replica at path and starts following its store: the one
// place where a store, a replica and a follower are put together.
//
// A replica that exists is served at once, whatever the store does: the
// store opens at the follower's first poll, in the background, and the
// status says why it cannot meanwhile. For a new replica (or with
// Config.CheckStore) Start opens the store, bounded by ctx and cfg.StoreTimeout, so that a wrong source (a
// missing bucket or directory, denied access) fails here, and leaves
// nothing behind (replica.Close); a store that does not answer (an
// outage) is waited for by the follower, as it waits for a first snapshot.
//
// When another process follows the replica, Start returns an error
// matching replica.ErrFollowed (see Lead).
func Start(ctx context.Context, path string, cfg Config) (*Handle, error) {
	if cfg.Interval < MinInterval {
		return nil, fmt.Errorf("poll interval %s is too short (minimum %s)", cfg.Interval, MinInterval)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	source := ""
	if cfg.Source != "" {
		if err := store.Check(cfg.Source); err != nil {
			return nil, err
		}
		source = store.Canonical(cfg.Source)
	}
	// The replica first: when another process follows it, that is all
	// there is to know, without a request to the store.
	r, err := replica.OpenOrigin(path, replica.Origin{Source: source, Store: keep(cfg.Store)})
	if err != nil {
		return nil, err
	}
	if !cfg.OwnStoreOnly {
		cfg.Store = StoreFor(cfg.Store, r.Origin().Store)
	}
	var st store.Reader
	var storeErr error
	switch {
	case r.Source() == "":
		r.Close() // leaves nothing behind: it was never made
		return nil, fmt.Errorf("%s: %w", path, ErrNoSource)
	case r.Head() != nil && !cfg.CheckStore:
		st = store.OpenLater(r.Source(), cfg.Store)
	default:
		if st, storeErr = openNew(ctx, r.Source(), cfg, log, path); st == nil {
			r.Close()
			return nil, storeErr
		}
	}
	existing, source := r.Head() != nil, r.Source() // before the follower writes the state
	log.Info("following", "db", path, "source", st.String(), "interval", cfg.Interval)
	f := Follow(r, st, Options{
		Interval: cfg.Interval, MaxInterval: cfg.MaxInterval, SnapshotCheckEvery: cfg.SnapshotCheckEvery,
		MaxSize: cfg.MaxSize, MaxHeld: cfg.MaxHeld, Bootstrap: cfg.Bootstrap,
		Logger: log, OnEvent: cfg.OnEvent, StoreErr: storeErr,
	})
	return &Handle{Follower: f, Replica: r, Source: source, Existing: existing}, nil
}

// openNew opens the store of a replica before it is served. It returns nil and
// the error when the source is wrong; a store that does not answer is
// returned to be opened later, with the reason.
func openNew(ctx context.Context, source string, cfg Config, log *slog.Logger, path string) (store.Reader, error) {
	if cfg.StoreTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.StoreTimeout)
		defer cancel()
	}
	st, err := store.Open(ctx, source, cfg.Store)
	switch {
	case err == nil:
		return st, nil
	case store.IsPermanent(err), errors.Is(ctx.Err(), context.Canceled):
		return nil, err // a wrong source; or Start was called off
	case store.IsUnreachable(err) || ctx.Err() != nil:
		log.Warn("store unreachable; the follower waits for it", "db", path, "err", err)
		return store.OpenLater(source, cfg.Store), err
	default:
		return nil, err
	}
}

// Lead starts following path as soon as no other process follows it:
// it tries at once, then every retry() while replica.ErrFollowed says
// another process does, calling waiting(first) after each such try (a
// passive reader refreshes what it reads; the command line says it
// waits). Any other error, or the end of ctx, ends the wait.
func Lead(ctx context.Context, path string, cfg Config, retry func() time.Duration, waiting func(first bool)) (*Handle, error) {
	for first := true; ; first = false {
		h, err := Start(ctx, path, cfg)
		if !errors.Is(err, replica.ErrFollowed) {
			return h, err
		}
		if waiting != nil {
			waiting(first)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(retry()):
		}
	}
}

// Close stops the follower, folds what it applied into the file (a poll
// cut short may have left some), and closes the replica.
func (h *Handle) Close() error {
	h.Follower.Close()
	var errs []error
	if _, err := h.Replica.Fold(); err != nil {
		errs = append(errs, fmt.Errorf("fold %s: %w", h.Replica.Path(), err))
	}
	if err := h.Replica.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close %s: %w", h.Replica.Path(), err))
	}
	return errors.Join(errs...)
}

// StoreFor is the store options to open a replica's store with: the ones
// an open gives, if it gives any of endpoint, region and path style (they
// win, for that open, and the state file keeps what it has), or else the
// ones the replica was made with.
func StoreFor(given store.Options, made replica.StoreOptions) store.Options {
	if given.Endpoint != "" || given.Region != "" || given.PathStyle != nil {
		return given
	}
	given.Endpoint, given.Region, given.PathStyle = made.Endpoint, made.Region, made.PathStyle
	return given
}

// keep is what a new replica's state file keeps of its store options:
// endpoint (without any user info in it), region, path style. Never
// credentials.
func keep(o store.Options) replica.StoreOptions {
	endpoint := o.Endpoint
	if u, err := url.Parse(endpoint); err == nil && u.User != nil {
		u.User = nil
		endpoint = u.String()
	}
	return replica.StoreOptions{Endpoint: endpoint, Region: o.Region, PathStyle: o.PathStyle}
}
