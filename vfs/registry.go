package vfs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/walrust/walrust/vfs/replica"
	"github.com/walrust/walrust/vfs/store"
)

// replicas holds the one follower per local file in this process, shared by
// every connection that opens the file; the last connection to close it
// stops the follower.
var replicas = struct {
	mu sync.Mutex
	m  map[string]*shared
}{m: make(map[string]*shared)}

type shared struct {
	path   string
	source string
	cfg    Config
	refs   int // open database files; guarded by replicas.mu

	// Exactly one of the two roles is set (see role.go): this process
	// follows the replica, or reads what another process follows.
	mu       sync.Mutex
	replica  *replica.Replica
	follower *replica.Follower
	passive  *replica.Passive

	stopWatch chan struct{} // closes to stop a passive entry's takeover watch
	watchDone chan struct{}
}

// acquire returns the shared replica of path, starting its follower on
// first use, and waits until it has a version to serve.
func acquire(path string, cfg Config) (*shared, error) {
	began := time.Now() // the open's timeout counts from here
	replicas.mu.Lock()
	s, ok := replicas.m[path]
	if ok {
		if cfg.Source != "" && store.Canonical(cfg.Source) != s.source {
			replicas.mu.Unlock()
			return nil, fmt.Errorf("%s is already open here following %s, not %s", path, s.source, cfg.Source)
		}
		if cfg.Interval != s.cfg.Interval {
			// One follower serves every connection of a file; the first
			// open chose how often it polls.
			logger.Warn("the replica is already followed here at another interval; keeping it", "db", path,
				"interval", s.cfg.Interval, "ignored", cfg.Interval)
		}
	} else {
		var err error
		if s, err = start(path, cfg); err != nil {
			replicas.mu.Unlock()
			return nil, err
		}
		replicas.m[path] = s
	}
	s.refs++
	replicas.mu.Unlock()

	if err := s.waitReady(began, cfg.Timeout); err != nil {
		s.release()
		return nil, err
	}
	return s, nil
}

// start opens path in the role this process can take: the follower, or a
// passive reader when another process follows it.
func start(path string, cfg Config) (*shared, error) {
	r, err := replica.Open(path, store.Canonical(cfg.Source))
	if errors.Is(err, replica.ErrFollowed) {
		return startPassive(path, cfg)
	} else if err != nil {
		return nil, err
	}
	f, source, err := startFollower(r, cfg)
	if err != nil {
		r.Close()
		return nil, err
	}
	return &shared{path: path, source: source, cfg: cfg, replica: r, follower: f}, nil
}

// startFollower starts following the store an opened replica names.
func startFollower(r *replica.Replica, cfg Config) (*replica.Follower, string, error) {
	path := r.Path()
	source := r.Source()
	if source == "" {
		return nil, "", fmt.Errorf("%s has no replica yet and no source: open it with ?source=file:///dir or s3://bucket/prefix, or set WALRUST_SOURCE", path)
	}
	st, err := store.Open(context.Background(), source, cfg.Store)
	switch {
	case err == nil:
	case store.IsPermanent(err):
		return nil, "", err
	case r.Head() != nil:
		// A store that cannot be reached right now (a server or network
		// outage) must not keep a restarted process from serving the
		// version it has. The follower opens the store at its polls, and
		// shows why it cannot meanwhile.
		logger.Warn("store unreachable; serving the local replica until it answers", "db", path, "err", err)
		st = store.OpenLater(source, cfg.Store)
	case store.IsUnreachable(err):
		// A new replica waits for the store as it waits for a first
		// snapshot: up to timeout=, counted from the open.
		logger.Warn("store unreachable; waiting for it to bootstrap", "db", path, "timeout", cfg.Timeout, "err", err)
		st = store.OpenLater(source, cfg.Store)
	default:
		return nil, "", err
	}
	logger.Info("following", "db", path, "source", st.String(), "interval", cfg.Interval)
	return replica.Follow(r, st, replica.Options{Interval: cfg.Interval, MaxSize: cfg.MaxSize, MaxHeld: cfg.MaxHeld, Logger: logger, StoreErr: err}), source, nil
}

// release drops one reference; the last one stops the follower.
func (s *shared) release() {
	replicas.mu.Lock()
	s.refs--
	last := s.refs == 0
	if last {
		delete(replicas.m, s.path)
	}
	replicas.mu.Unlock()
	if last {
		s.close()
	}
}
