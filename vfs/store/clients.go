package store

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
)

// Clients shares S3 clients between the stores opened with it (set
// Options.Clients): one client, and so one connection pool and one set of
// credentials, per endpoint, region, path style and AWS environment, for
// every store on it. A process that follows many databases on one server
// opens one client; a nil *Clients gives every store its own, as a store
// that is opened alone needs.
//
// Mutex rules: mu guards m, and is held only to look an entry up or to add
// or drop one, never while a client is made (that may wait on the network,
// for credentials): the opens of one key wait on its entry's ready, those
// of other keys not at all.
type Clients struct {
	mu sync.Mutex
	m  map[clientKey]*clientEntry
}

// clientEntry is one key's client, made by the first open that needed it.
type clientEntry struct {
	ready chan struct{} // closed once cl or err is set
	cl    *s3Client
	err   error
}

// NewClients returns an empty cache of S3 clients.
func NewClients() *Clients { return &Clients{m: map[clientKey]*clientEntry{}} }

// clientKey is what tells two clients apart: the options a client is made
// from, and the environment the SDK reads its credentials and
// configuration from.
type clientKey struct {
	endpoint, region, pathStyle string
	env                         string
}

// Len is how many clients the cache holds.
func (c *Clients) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// get returns the client for s (its endpoint normalized) and opts: the
// shared one, or a new one made and kept (a failure is not kept, so the
// next open tries again). A nil c makes a new client every time.
func (c *Clients) get(ctx context.Context, s *S3Store, opts Options) (*s3Client, error) {
	if c == nil {
		return newS3Client(ctx, s, opts)
	}
	k := clientKey{endpoint: s.endpoint, region: opts.Region, env: awsEnv()}
	if opts.PathStyle != nil {
		k.pathStyle = "false"
		if *opts.PathStyle {
			k.pathStyle = "true"
		}
	}
	c.mu.Lock()
	e, ok := c.m[k]
	if !ok {
		e = &clientEntry{ready: make(chan struct{})}
		c.m[k] = e
	}
	c.mu.Unlock()
	if !ok {
		// Made outside mu; the opens of the same key wait on ready
		// rather than each making their own.
		e.cl, e.err = newS3Client(ctx, s, opts)
		if e.err != nil {
			c.mu.Lock()
			delete(c.m, k) // not kept: the next open tries again
			c.mu.Unlock()
		}
		close(e.ready)
	}
	select {
	case <-e.ready:
		return e.cl, e.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: waiting for another open's S3 client: %w", s, ctx.Err())
	}
}

// awsEnv is the environment variables the SDK and OpenS3 read, in one
// string.
func awsEnv() string {
	var vars []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, "LITESTREAM_") {
			vars = append(vars, kv)
		}
	}
	sort.Strings(vars)
	return strings.Join(vars, "\x00")
}
