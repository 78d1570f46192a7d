package vfs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/walrust/walrust/vfs/follow"
	"github.com/walrust/walrust/vfs/replica"
	"github.com/walrust/walrust/vfs/store"
)

// replicas holds the one follower per local file in this process, shared by
// every connection that opens the file; the last connection to close it
// stops the follower. Its mutex is never held across a wait on the store or
// the disk: an entry is added under it and started outside it, so an open
// that waits on an unanswering store holds up no open of another file.
var replicas = struct {
	mu sync.Mutex
	m  map[string]*shared // guarded by mu
}{m: make(map[string]*shared)}

type shared struct {
	path string
	key  string // in replicas.m: the path, and the point of a view (viewKey)
	cfg  Config // the first open's: how this process follows the file
	refs int    // open database files, and opens waiting; guarded by replicas.mu

	// started is closed once the first open has started the entry; then
	// startErr, written before, says whether that failed. Later opens of
	// the path wait on it, each up to its own timeout.
	started  chan struct{}
	startErr error

	// mu guards the role and what it says, which a takeover changes.
	// Exactly one of the two roles is set once started (see role.go): this
	// process follows the replica, or reads what another process follows.
	mu      sync.Mutex
	source  string         // the store followed, canonical; from the state file when the URI named none
	lead    *follow.Handle // set when this process follows the replica
	passive *replica.Passive
	// passiveErr is why the replica another process follows cannot be
	// read, once its state file says more than "not bootstrapped yet".
	passiveErr error

	stopWatch chan struct{} // closes to stop a passive entry's takeover watch
	watchDone chan struct{}

	// view is set, once started, for an as_of view (view.go), which is
	// read through passive and never followed.
	view *viewFiles

	// gate lets transactions begin without Go (replica.Gate); the
	// follower's replica opens it, whichever connection made the entry
	// follower. Nil when it could not be mapped. Freed at close.
	gate *replica.Gate

	// Transactions refused by max_lag (stale.go): how many since the last
	// log line, and when that was. Guarded by mu.
	staleRefused int
	staleLogged  time.Time
	// seenCurrent is the newest time another process's follower had
	// confirmed the replica current, as max_lag last read it (stale.go).
	// Guarded by mu.
	seenCurrent time.Time
}

// acquire returns the shared replica of path, starting it on first use,
// and waits until it has a version to serve.
func acquire(path string, cfg Config) (*shared, error) {
	began := time.Now() // the open's timeout counts from here
	key := viewKey(path, cfg.AsOf)
	replicas.mu.Lock()
	s, ok := replicas.m[key]
	if !ok {
		s = &shared{path: path, key: key, cfg: cfg, started: make(chan struct{})}
		if cfg.AsOf.IsZero() { // a view is read passively: no gate
			var err error
			if s.gate, err = replica.NewGate(); err != nil {
				logger.Warn("every transaction will call into Go", "db", path, "err", err)
			}
		}
		replicas.m[key] = s
	}
	s.refs++
	replicas.mu.Unlock()
	if !ok {
		s.start(began)
	}
	if err := s.join(cfg, began); err != nil {
		s.release()
		return nil, err
	}
	return s, nil
}

// start opens the replica in the role this process can take and records
// how that went. A failed entry leaves the registry, so that the next open
// tries again.
func (s *shared) start(began time.Time) {
	if err := s.open(began); err != nil {
		s.startErr = err
		replicas.mu.Lock()
		if replicas.m[s.key] == s {
			delete(replicas.m, s.key)
		}
		replicas.mu.Unlock()
	}
	close(s.started)
}

// join waits, up to this open's timeout, for the entry to start; then
// checks that this open asks for what the entry follows, and waits until
// there is a version to serve.
func (s *shared) join(cfg Config, began time.Time) error {
	select {
	case <-s.started:
	default:
		t := time.NewTimer(time.Until(began.Add(cfg.Timeout)))
		defer t.Stop()
		select {
		case <-s.started:
		case <-t.C:
			return fmt.Errorf("no replica after %s: another open of %s is still starting it", cfg.Timeout, s.path)
		}
	}
	if s.startErr != nil {
		return s.startErr
	}
	s.mu.Lock()
	source := s.source
	s.mu.Unlock()
	if cfg.Source != "" && store.Canonical(cfg.Source) != source {
		return fmt.Errorf("%s is already open here following %s, not %s", s.path, source, cfg.Source)
	}
	if cfg.IntervalAsked && cfg.Interval != s.cfg.Interval {
		// One follower serves every connection of a file; the first
		// open chose how often it polls.
		logger.Warn("the replica is already followed here at another interval; keeping it", "db", s.path,
			"interval", s.cfg.Interval, "ignored", cfg.Interval)
	}
	return s.waitReady(began, cfg.Timeout)
}

// open takes the role this process can take: the follower, or a passive
// reader when another process follows the replica.
func (s *shared) open(began time.Time) error {
	// Reaching a new replica's store may wait on the network: no longer
	// than the open that needs it.
	ctx, cancel := context.WithDeadline(context.Background(), began.Add(s.cfg.Timeout))
	defer cancel()
	if !s.cfg.AsOf.IsZero() {
		return s.openView(ctx)
	}
	h, err := follow.Start(ctx, s.path, s.followConfig())
	if errors.Is(err, replica.ErrFollowed) {
		return s.startPassive()
	} else if err != nil {
		return explainStart(s.path, err)
	}
	s.attachGate(h)
	s.mu.Lock()
	s.lead, s.source = h, h.Source
	s.mu.Unlock()
	return nil
}

// s3Clients shares S3 clients between the replicas this process follows:
// one per endpoint, region and credentials (store.Clients).
var s3Clients = store.NewClients()

// followConfig is how this process follows the replica, from the first
// open's parameters.
func (s *shared) followConfig() follow.Config {
	opts := s.cfg.Store
	opts.Clients = s3Clients
	return follow.Config{
		Source: s.cfg.Source, Interval: s.cfg.Interval, StoreTimeout: s.cfg.Timeout,
		MaxInterval: s.cfg.MaxInterval, SnapshotCheckEvery: s.cfg.SnapshotCheck,
		MaxSize: s.cfg.MaxSize, MaxHeld: s.cfg.MaxHeld, Bootstrap: s.cfg.Bootstrap, Store: opts, Logger: logger,
		// With WALRUST_SOURCES, S3 options come from the environment
		// and the listed source URLs only, not from a state file.
		OwnStoreOnly: s.cfg.ownStoreOnly(),
	}
}

// explainStart says how to give a replica a source, in the terms of an
// SQLite open.
func explainStart(path string, err error) error {
	if errors.Is(err, follow.ErrNoSource) {
		return fmt.Errorf("%s has no replica yet and no source: open it with ?source=file:///dir or s3://bucket/prefix, or set WALRUST_SOURCE", path)
	}
	return err
}

// release drops one reference; the last one stops the follower.
func (s *shared) release() {
	replicas.mu.Lock()
	s.refs--
	last := s.refs == 0
	if last && replicas.m[s.key] == s {
		delete(replicas.m, s.key)
	}
	replicas.mu.Unlock()
	if last {
		s.close()
	}
}
