package vfs

import (
	"context"
	"fmt"
	"strings"
	"sync"

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
	path     string
	source   string
	replica  *replica.Replica
	follower *replica.Follower
	refs     int // open database files; guarded by replicas.mu
}

// acquire returns the shared replica of path, starting its follower on
// first use, and waits until it has a version to serve.
func acquire(path string, cfg Config) (*shared, error) {
	replicas.mu.Lock()
	s, ok := replicas.m[path]
	if ok {
		if cfg.Source != "" && normalizeSource(cfg.Source) != s.source {
			replicas.mu.Unlock()
			return nil, fmt.Errorf("%s is already open here following %s, not %s", path, s.source, cfg.Source)
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

	if err := s.follower.WaitReady(cfg.Timeout); err != nil {
		s.release()
		return nil, err
	}
	return s, nil
}

func start(path string, cfg Config) (*shared, error) {
	r, err := replica.Open(path, normalizeSource(cfg.Source))
	if err != nil {
		return nil, err
	}
	source := r.Source()
	if source == "" {
		r.Close()
		return nil, fmt.Errorf("%s has no replica yet and no source: open it with ?source=file:///dir or s3://bucket/prefix, or set WALRUST_SOURCE", path)
	}
	st, err := store.Open(context.Background(), source, cfg.Store)
	if err != nil {
		r.Close()
		return nil, err
	}
	logger.Info("following", "db", path, "source", st.String(), "interval", cfg.Interval)
	return &shared{
		path: path, source: source, replica: r,
		follower: replica.NewFollower(r, st, cfg.Interval, logger),
	}, nil
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
		s.follower.Close()
		if err := s.replica.Close(); err != nil {
			logger.Error("close replica", "db", s.path, "err", err)
		}
	}
}

// normalizeSource makes equal sources compare equal in the state file.
func normalizeSource(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > len("file:///") {
		s = strings.TrimRight(s, "/")
	}
	return s
}
