package vfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/superfly/ltx"

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
	replicas.mu.Lock()
	s, ok := replicas.m[path]
	if ok {
		if cfg.Source != "" && store.Canonical(cfg.Source) != s.source {
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

	if err := s.waitReady(cfg.Timeout); err != nil {
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
	if err != nil {
		if store.IsPermanent(err) || r.Head() == nil {
			return nil, "", err
		}
		// The replica has a version to serve: a store that cannot be
		// reached right now (a server or network outage) must not keep a
		// restarted process from serving it. The follower opens the store
		// at its polls, and shows why it cannot meanwhile.
		logger.Warn("store unreachable; serving the local replica until it answers", "db", path, "err", err)
		st = &lazyStore{source: source, opts: cfg.Store}
	}
	logger.Info("following", "db", path, "source", st.String(), "interval", cfg.Interval)
	return replica.NewFollower(r, st, cfg.Interval, logger), source, nil
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

// lazyStore opens its store at first use, and again at every use until an
// open succeeds.
type lazyStore struct {
	source string
	opts   store.Options
	mu     sync.Mutex
	st     store.Store
}

func (l *lazyStore) get(ctx context.Context) (store.Store, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st == nil {
		st, err := store.Open(ctx, l.source, l.opts)
		if err != nil {
			return nil, err
		}
		l.st = st
	}
	return l.st, nil
}

func (l *lazyStore) ListAfter(ctx context.Context, level int, after ltx.TXID) ([]store.FileInfo, error) {
	st, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return st.ListAfter(ctx, level, after)
}

func (l *lazyStore) Open(ctx context.Context, f store.FileInfo) (io.ReadCloser, error) {
	st, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return st.Open(ctx, f)
}

func (l *lazyStore) Put(ctx context.Context, f store.FileInfo, r io.Reader) error {
	st, err := l.get(ctx)
	if err != nil {
		return err
	}
	return st.Put(ctx, f, r)
}

func (l *lazyStore) Delete(ctx context.Context, f store.FileInfo) error {
	st, err := l.get(ctx)
	if err != nil {
		return err
	}
	return st.Delete(ctx, f)
}

func (l *lazyStore) Stats() store.Stats {
	l.mu.Lock()
	st := l.st
	l.mu.Unlock()
	if st == nil {
		return store.Stats{}
	}
	return st.Stats()
}

// String is the source without its query (endpoint, region): what the
// opened store would say.
func (l *lazyStore) String() string {
	s, _, _ := strings.Cut(l.source, "?")
	return s
}
