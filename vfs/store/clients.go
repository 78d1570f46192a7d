package store

import (
	"context"
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
type Clients struct {
	mu sync.Mutex
	m  map[clientKey]*s3Client
}

// NewClients returns an empty cache of S3 clients.
func NewClients() *Clients { return &Clients{m: map[clientKey]*s3Client{}} }

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
	// Held while making a client: the stores that wait for it would
	// otherwise each make their own.
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.m[k]; ok {
		return cl, nil
	}
	cl, err := newS3Client(ctx, s, opts)
	if err != nil {
		return nil, err
	}
	c.m[k] = cl
	return cl, nil
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
