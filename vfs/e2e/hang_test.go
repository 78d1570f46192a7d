package e2e

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walrust/walrust/vfs/testkit/s3test"
)

// openResult is how one open, run in a goroutine, ended.
type openResult struct {
	took time.Duration
	err  error
}

// pingAsync opens uri and runs one query in a goroutine; the channel gets
// how it ended. The database is closed when the test ends, once the query
// has returned.
func pingAsync(t *testing.T, uri string) <-chan openResult {
	t.Helper()
	db, err := sql.Open("sqlite3", uri)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan openResult, 1)
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		var n int
		err := db.QueryRow("SELECT count(*) FROM sqlite_schema").Scan(&n)
		out <- openResult{time.Since(start), err}
	}()
	t.Cleanup(func() {
		<-done
		db.Close()
	})
	return out
}

// within waits up to d for an open to end.
func within(t *testing.T, what string, c <-chan openResult, d time.Duration) (openResult, bool) {
	t.Helper()
	select {
	case r := <-c:
		return r, true
	case <-time.After(d):
		t.Errorf("%s: still blocked after %v", what, d)
		return openResult{}, false
	}
}

// TestHangingStoreBlocksNoOtherOpen: an S3 endpoint that accepts
// connections and never answers holds up only the opens that need it, and
// those only for their own timeout= — not every open in the process (the
// registry once held its mutex across the store's open, ~150 s with the S3
// client's retries).
func TestHangingStoreBlocksNoOtherOpen(t *testing.T) {
	srv := s3test.Start(t, s3Bucket)
	srv.Env(t)
	proxy := s3test.NewProxy(t, srv.Endpoint)
	proxy.Misbehave("", s3test.Hang, -1)
	e := newWorld(t, 4096, false)
	e.Ref.Insert(2)
	e.Commit()

	hung := filepath.Join(e.Dir, "hung.db")
	hungURI := func(timeout string) string {
		return fmt.Sprintf("file:%s?vfs=walrust&source=s3://%s/%s&endpoint=%s&interval=50ms&timeout=%s", hung, s3Bucket, s3Prefix, proxy.URL, timeout)
	}
	first := pingAsync(t, hungURI("8s"))
	eventually(t, "the first open to reach the endpoint", func() error {
		if proxy.Seen() == 0 {
			return fmt.Errorf("no request yet")
		}
		return nil
	})

	// Another open of the same path waits for the first one's start, but
	// only as long as its own timeout.
	same := pingAsync(t, hungURI("1s"))
	// A replica of another store opens as if nothing hung.
	other := pingAsync(t, e.followURI("&timeout=10s"))

	// B answers its first query within a second, while A still waits.
	if r, ok := within(t, "an open of a file store while another open hangs", other, time.Second); ok && r.err != nil {
		t.Errorf("the file store's replica did not open: %v", r.err)
	}
	if r, ok := within(t, "a second open of the hanging replica, timeout=1s", same, 5*time.Second); ok {
		if r.err == nil {
			t.Errorf("the second open of the hanging replica succeeded")
		}
		t.Logf("second open (timeout=1s) failed after %v", r.took.Round(time.Millisecond))
	}
	if r, ok := within(t, "the hanging open, timeout=8s", first, 20*time.Second); ok {
		if r.err == nil {
			t.Fatalf("the open of the hanging store succeeded")
		}
		if r.took < 7*time.Second || r.took > 10*time.Second {
			t.Errorf("the hanging open failed after %v, not at its timeout of 8s", r.took)
		}
		t.Logf("hanging open (timeout=8s) failed after %v", r.took.Round(time.Millisecond))
	}
	// A's failure says what it waited for, and how long.
	said := ""
	for _, l := range strings.Split(e.Logs.String(), "\n") {
		if strings.Contains(l, `msg="cannot open database"`) && strings.Contains(l, hung) && strings.Contains(l, "after 8s") {
			said = l
		}
	}
	if !strings.Contains(said, "s3://"+s3Bucket+"/"+s3Prefix) {
		t.Errorf("no log line says why the hanging open failed:\n%s", e.Logs)
	}
	t.Logf("%s", said)
}

// TestExistingReplicaOpensWhilePollHangs: a replica that exists opens at
// once and serves what it has while its first poll is stuck (here every
// GET hangs, so the new file cannot be downloaded), with any timeout=, 0
// included; it catches up once the store answers.
func TestExistingReplicaOpensWhilePollHangs(t *testing.T) {
	w := newS3World(t, true)
	proxy := s3test.NewProxy(t, w.srv.Endpoint)
	uri := func(timeout string) string {
		return fmt.Sprintf("file:%s?vfs=walrust&source=%s&endpoint=%s&interval=50ms&timeout=%s",
			filepath.Join(w.dir, "replica.db"), w.srv.URL(s3Bucket, s3Prefix), proxy.URL, timeout)
	}
	w.commit(2)
	c := s3OpenGo(t, w.dir, uri("20s"))
	w.waitCaughtUp(c, "before the hang")
	before := w.want()
	c.close()

	proxy.Misbehave("GET", s3test.Hang, -1)
	w.commit(3)
	for _, timeout := range []string{"2s", "0"} {
		db, err := sql.Open("sqlite3", uri(timeout))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		got, err := s3Probe(&s3GoClient{db: db})
		took := time.Since(start)
		if err != nil || got != before {
			t.Errorf("timeout=%s: the open answered %q, %v after %v; want the replica's state %q at once", timeout, got, err, took.Round(time.Millisecond), before)
		} else if took > 5*time.Second {
			t.Errorf("timeout=%s: the open took %v", timeout, took)
		}
		if timeout != "0" {
			db.Close()
			continue
		}
		proxy.Behave()
		w.waitCaughtUp(&s3GoClient{db: db}, "once the store answers")
		db.Close()
	}
}
