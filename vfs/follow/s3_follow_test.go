package follow

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/replica"
	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/ltxtest"
	"github.com/walrust/walrust/vfs/testkit/s3test"
	"github.com/walrust/walrust/vfs/testkit/testtool"
	"github.com/walrust/walrust/vfs/testkit/worldtest"
)

// countingStore counts the follower's calls: ListAfter calls started and
// finished (once caught up, one per poll), and Open calls.
type countingStore struct {
	store.Store
	listsStarted, listsDone, opens atomic.Int64
}

func (c *countingStore) ListAfter(ctx context.Context, level int, after ltx.TXID) ([]store.FileInfo, error) {
	c.listsStarted.Add(1)
	defer c.listsDone.Add(1)
	return c.Store.ListAfter(ctx, level, after)
}

func (c *countingStore) Open(ctx context.Context, f store.FileInfo) (io.ReadCloser, error) {
	c.opens.Add(1)
	return c.Store.Open(ctx, f)
}

// TestS3IdlePolls: a caught-up follower of a real S3 server (versitygw)
// costs exactly one LIST request per poll and no GET, counted three ways
// that must agree — the follower's polls, the S3 client's requests, and the
// requests the server logged — with 10 and with 10,000 older files at L0
// (which a LIST that started at the bucket's first key would page through).
func TestS3IdlePolls(t *testing.T) {
	for _, old := range []int{10, 10000} {
		t.Run(fmt.Sprintf("%d files", old), func(t *testing.T) { testS3IdlePolls(t, old) })
	}
}

func testS3IdlePolls(t *testing.T, old int) {
	const interval = 20 * time.Millisecond
	const window = time.Second
	srv := s3test.Start(t, "bkt")
	srv.Env(t)
	ctx := context.Background()
	openStore := func() store.Store {
		st, err := store.Open(ctx, srv.URL("bkt", "app"), srv.Options())
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	for txid := 1; txid <= old; txid++ {
		srv.WriteObject("bkt", fmt.Sprintf("app/0000/%016x-%016x.ltx", txid, txid), []byte("never read"))
	}
	dir := t.TempDir()
	ref := worldtest.NewRefDB(t, filepath.Join(dir, "primary.db"), 4096)
	pub := &ltxtest.Primary{Store: openStore(), PageSize: 4096, NoChecksum: true}
	ref.Exec("INSERT INTO t (k, v) VALUES ('a', x'00')")
	pub.Advance(ref.Image(), ltx.TXID(old)+10)
	pub.Snapshot(t)
	ref.Exec("INSERT INTO t (k, v) VALUES ('b', x'01')")
	pub.Commit(t, ref.Image())

	mark := len(srv.Requests())
	s3st := openStore()
	cs := &countingStore{Store: s3st}
	r, err := replica.Open(filepath.Join(dir, "replica.db"), s3st.String())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	logs := &testtool.Buffer{}
	f := Follow(r, cs, Options{Interval: interval, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	defer f.Close()
	if err := f.WaitReady(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitTXID(t, r, f, pub.TXID)

	type sample struct {
		at                            time.Time
		polls, clientLists, srvLists  int64
		opens, clientGets, serverGets int64
	}
	// take samples the three counters when no ListAfter is in flight, so
	// that every request counted has been answered, and logged.
	take := func() sample {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			started := cs.listsStarted.Load()
			if cs.listsDone.Load() == started {
				var s sample
				for _, req := range srv.Requests()[mark:] {
					switch req.Kind {
					case "LIST":
						s.srvLists++
					case "GET", "HEAD":
						s.serverGets++
					}
				}
				stats := s3st.Stats()
				if cs.listsStarted.Load() == started {
					s.at, s.polls, s.clientLists, s.opens, s.clientGets = time.Now(), started, stats.Lists, cs.opens.Load(), stats.Gets
					return s
				}
			}
			if time.Now().After(deadline) {
				t.Fatal("the follower never stopped listing")
			}
			time.Sleep(time.Millisecond)
		}
	}
	s0 := take()
	time.Sleep(window) // the measuring window, not an assertion
	s1 := take()
	polls, clientLists, srvLists := s1.polls-s0.polls, s1.clientLists-s0.clientLists, s1.srvLists-s0.srvLists
	t.Logf("%d old files: %d polls in %v at interval %v: %d LIST requests from the client, %d at the server; GET: %d",
		old, polls, s1.at.Sub(s0.at).Round(time.Millisecond), interval, clientLists, srvLists, s1.serverGets-s0.serverGets)
	if polls < 5 {
		t.Errorf("only %d polls in %v at interval %v", polls, window, interval)
	}
	if clientLists != polls || srvLists != polls {
		t.Errorf("%d polls cost %d LIST requests (client) and %d (server); want one each", polls, clientLists, srvLists)
	}
	if s1.opens != s0.opens || s1.clientGets != s0.clientGets || s1.serverGets != s0.serverGets {
		t.Errorf("idle follower downloaded: %d opens, %d GET (client), %d GET (server)",
			s1.opens-s0.opens, s1.clientGets-s0.clientGets, s1.serverGets-s0.serverGets)
	}
	// Over the whole run too, the client's count is the server's.
	if s1.clientLists != s1.srvLists || s1.clientGets != s1.serverGets {
		t.Errorf("since open: client %d LIST %d GET, server %d LIST %d GET", s1.clientLists, s1.clientGets, s1.srvLists, s1.serverGets)
	}
	if st := f.Status(); st.LastError != "" {
		t.Errorf("last_error: %s", st.LastError)
	}
}

// failingOpens is a store whose Open always fails with err.
type failingOpens struct {
	store.Store
	err error
}

func (s failingOpens) Open(ctx context.Context, f store.FileInfo) (io.ReadCloser, error) {
	return nil, fmt.Errorf("open %s: %w", f, s.err)
}

// TestS3WaitReadyPermanent: a bootstrap that fails in a way no retry cures
// (here the snapshot's GET is denied while listing works) ends WaitReady at
// once with the reason; one that may yet succeed (a server error) is waited
// for until the timeout.
func TestS3WaitReadyPermanent(t *testing.T) {
	srv := s3test.Start(t, "bkt")
	srv.Env(t)
	st, err := store.Open(context.Background(), srv.URL("bkt", "app"), srv.Options())
	if err != nil {
		t.Fatal(err)
	}
	ref := worldtest.NewRefDB(t, filepath.Join(t.TempDir(), "primary.db"), 4096)
	pub := &ltxtest.Primary{Store: st, PageSize: 4096, NoChecksum: true}
	pub.Advance(ref.Image(), 1)
	pub.Snapshot(t)

	for _, tc := range []struct {
		name      string
		err       error
		timeout   time.Duration
		want      string
		permanent bool
	}{
		{"access denied", fmt.Errorf("%w (AccessDenied)", store.ErrAccessDenied), 20 * time.Second,
			"no replica of s3://bkt/app: bootstrap: open L9/0000000000000001-0000000000000001.ltx: access denied (AccessDenied)", true},
		{"server error", fmt.Errorf("503 Service Unavailable"), 300 * time.Millisecond,
			"no replica of s3://bkt/app after 300ms: bootstrap: open L9/0000000000000001-0000000000000001.ltx: 503 Service Unavailable", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := replica.Open(filepath.Join(t.TempDir(), "replica.db"), st.String())
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			f := Follow(r, failingOpens{Store: st, err: tc.err}, Options{Interval: 10 * time.Millisecond})
			defer f.Close()
			start := time.Now()
			err = f.WaitReady(tc.timeout)
			took := time.Since(start)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("WaitReady: %v\nwant: %s", err, tc.want)
			}
			if tc.permanent && took > 2*time.Second {
				t.Errorf("WaitReady gave up after %v on a permanent error", took)
			}
			if !tc.permanent && took < tc.timeout {
				t.Errorf("WaitReady gave up after %v, before its timeout, on an error a retry may cure", took)
			}
		})
	}
}
