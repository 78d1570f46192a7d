package store_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/s3test"
)

// Faults between walrust and S3: a server that goes away, and a proxy that
// fails, stalls or drops requests on purpose.

func TestS3ServerDown(t *testing.T) {
	srv := s3test.Start(t, "bkt")
	srv.WriteObject("bkt", "app/0000/"+ltxName(1, 1), []byte("x"))
	st := open(t, srv, "bkt", "app")
	srv.Stop()

	// Connection refused is retried, up to the attempt limit.
	start := time.Now()
	_, err := st.ListAfter(context.Background(), 0, 0)
	if err == nil {
		t.Fatal("list with the server down: no error")
	}
	t.Logf("after %v: %v", time.Since(start), err)
	if !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), "attempts, 5") {
		t.Errorf("error %q: want connection refused after 5 attempts", err)
	}
	if store.IsPermanent(err) || !store.IsUnreachable(err) {
		t.Errorf("a server that is down is unreachable, not permanent: %v", err)
	}

	// Every call is bounded by its context, retries included.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = st.ListAfter(ctx, 0, 0)
	if el := time.Since(start); el > 500*time.Millisecond {
		t.Errorf("list with a 50ms context took %v", el)
	}
	if err == nil || store.IsPermanent(err) {
		t.Errorf("list with a 50ms context: %v", err)
	}
	_, err = st.Open(ctx, store.FileInfo{Level: 0, MinTXID: 1, MaxTXID: 1})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("open with an expired context: %v; want DeadlineExceeded", err)
	}

	srv.Restart()
	if got, err := st.ListAfter(context.Background(), 0, 0); err != nil || len(got) != 1 {
		t.Errorf("list after restart: %v, %v", got, err)
	}

	// A server that comes back while a request is being retried.
	srv.Stop()
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []store.FileInfo
	done := make(chan struct{})
	go func() {
		defer close(done)
		for attempt := 0; attempt < 10; attempt++ { // each call retries; the loop is the follower's
			if got, err = st.ListAfter(ctx, 0, 0); err == nil {
				return
			}
		}
	}()
	time.Sleep(100 * time.Millisecond)
	srv.Restart()
	<-done
	if err != nil || len(got) != 1 {
		t.Errorf("list while the server restarts: %v, %v", got, err)
	}
}

// faultProxy stands between the store and versitygw and fails the first
// requests in the way it is told.
type faultProxy struct {
	URL     string
	proxy   *httputil.ReverseProxy
	stalled *httputil.ReverseProxy // proxies the headers and 64 KiB of the body, then stalls
	mode    atomic.Value           // string: "", "503", "500", "slowdown", "drop", "stall", "stallbody"
	faults  atomic.Int32           // how many more requests to fail
	seen    atomic.Int32
}

func newFaultProxy(t *testing.T, endpoint string) *faultProxy {
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	fp := &faultProxy{proxy: httputil.NewSingleHostReverseProxy(target)}
	fp.stalled = httputil.NewSingleHostReverseProxy(target)
	fp.stalled.FlushInterval = -1
	fp.stalled.ModifyResponse = func(resp *http.Response) error {
		resp.Body = &stallAfter{ReadCloser: resp.Body, n: 64 << 10, ctx: resp.Request.Context()}
		return nil
	}
	fp.mode.Store("")
	ts := httptest.NewServer(fp)
	t.Cleanup(ts.Close)
	fp.URL = ts.URL
	return fp
}

// fail makes the next n requests fail the way mode says.
func (p *faultProxy) fail(mode string, n int32) {
	p.mode.Store(mode)
	p.faults.Store(n)
	p.seen.Store(0)
}

// stallAfter passes n bytes, then blocks until its request is abandoned.
type stallAfter struct {
	io.ReadCloser
	n   int
	ctx context.Context
}

func (s *stallAfter) Read(p []byte) (int, error) {
	if s.n <= 0 {
		<-s.ctx.Done()
		return 0, s.ctx.Err()
	}
	if len(p) > s.n {
		p = p[:s.n]
	}
	n, err := s.ReadCloser.Read(p)
	s.n -= n
	return n, err
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.seen.Add(1)
	if p.faults.Add(-1) >= 0 {
		switch p.mode.Load().(string) {
		case "503":
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		case "500":
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>boom</Message></Error>`)
			return
		case "slowdown":
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
			return
		case "drop":
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		case "stall":
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			return
		case "stallbody":
			p.stalled.ServeHTTP(w, r)
			return
		}
	}
	p.proxy.ServeHTTP(w, r)
}

func TestS3RetriesFaults(t *testing.T) {
	srv := s3test.Start(t, "bkt")
	srv.WriteObject("bkt", "app/0000/"+ltxName(1, 1), []byte("x"))
	fp := newFaultProxy(t, srv.Endpoint)
	defer store.SetS3ReadTimeout(300 * time.Millisecond)()

	srv.Env(t)
	opts := srv.Options()
	opts.Endpoint = fp.URL
	st, err := store.Open(context.Background(), srv.URL("bkt", "app"), opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mode   string
		faults int32
	}{
		{"503", 2}, {"500", 2}, {"drop", 2}, {"stall", 1},
		{"slowdown", 1}, // throttling backs off from 1s
	} {
		t.Run(tc.mode, func(t *testing.T) {
			fp.fail(tc.mode, tc.faults)
			start := time.Now()
			got, err := st.ListAfter(context.Background(), 0, 0)
			if err != nil || len(got) != 1 {
				t.Fatalf("list through %d faults: %v, %v", tc.faults, got, err)
			}
			if n := fp.seen.Load(); n != tc.faults+1 {
				t.Errorf("%d requests reached the proxy, want %d", n, tc.faults+1)
			}
			t.Logf("%d %s faults, then success, in %v", tc.faults, tc.mode, time.Since(start))
		})
	}
	t.Run("too many", func(t *testing.T) {
		fp.fail("503", 100)
		_, err := st.ListAfter(context.Background(), 0, 0)
		if err == nil || store.IsPermanent(err) || !store.IsUnreachable(err) {
			t.Errorf("list through endless 503s: %v; want a temporary error", err)
		}
		if n := fp.seen.Load(); n != 5 {
			t.Errorf("%d attempts, want 5", n)
		}
		t.Logf("endless 503: %v", err)
	})
	t.Run("stalled body", func(t *testing.T) {
		data := randBytes(1 << 20)
		f := store.FileInfo{Level: 0, MinTXID: 2, MaxTXID: 2}
		srv.WriteObject("bkt", "app/0000/"+f.Name(), data)
		fp.fail("stallbody", 1)
		before := st.Stats()
		start := time.Now()
		if b := readAll(t, st, f); !bytes.Equal(b, data) {
			t.Fatalf("read %d bytes, not the object", len(b))
		}
		after := st.Stats()
		if after.Gets-before.Gets != 2 || after.Bytes-before.Bytes != int64(len(data)) {
			t.Errorf("stats went from %+v to %+v: want one resumed GET, and each byte counted once", before, after)
		}
		t.Logf("body stalled after 64 KiB, resumed, done in %v", time.Since(start))
	})
}

// TestS3ResumeBody: a download that breaks when the server dies resumes
// where it stopped once the server is back.
func TestS3ResumeBody(t *testing.T) {
	srv := s3test.Start(t, "bkt")
	data := randBytes(48 << 20) // well beyond what socket buffers hold
	f := store.FileInfo{Level: store.SnapshotLevel, MinTXID: 1, MaxTXID: 100}
	srv.WriteObject("bkt", "app/0009/"+f.Name(), data)
	st := open(t, srv, "bkt", "app")

	rc, err := st.Open(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	head := make([]byte, 1<<20)
	if _, err := io.ReadFull(rc, head); err != nil {
		t.Fatal(err)
	}
	srv.Restart() // kills the server mid-body, starts it again
	rest, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read after restart: %v", err)
	}
	if !bytes.Equal(append(head, rest...), data) {
		t.Fatalf("resumed download differs (%d bytes)", len(head)+len(rest))
	}
	stats := st.Stats()
	if stats.Gets < 2 || stats.Bytes != int64(len(data)) {
		t.Errorf("stats %+v: want 2+ gets and exactly %d bytes", stats, len(data))
	}
	ranged := 0
	for _, r := range srv.Requests() {
		if r.Kind == "GET" {
			ranged++
		}
	}
	t.Logf("stats %+v, %d GET requests at the server", stats, ranged)
}
