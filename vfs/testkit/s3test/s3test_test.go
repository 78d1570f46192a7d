package s3test

import (
	"net/http"
	"runtime"
	"testing"
	"time"
)

func TestParseLogLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		want Request
		ok   bool
	}{
		{"20:37:41 | vgw | 200 |     182.191µs | 127.0.0.1 | GET | /bkt | - | list-type=2&prefix=app%2F0000%2F",
			Request{200, "GET", "/bkt", "list-type=2&prefix=app%2F0000%2F", "LIST"}, true},
		{"20:37:41 | vgw | 200 |  1ms | 127.0.0.1 | GET | /bkt/app/0000/x.ltx | - | ", Request{200, "GET", "/bkt/app/0000/x.ltx", "", "GET"}, true},
		{"20:37:41 | vgw | 206 |  1ms | 127.0.0.1 | GET | /bkt/app/0009/x.ltx | - | x-id=GetObject", Request{206, "GET", "/bkt/app/0009/x.ltx", "x-id=GetObject", "GET"}, true},
		{"20:37:41 | vgw | 200 |  1ms | 127.0.0.1 | PUT | /bkt/k | - | partNumber=1&uploadId=u", Request{200, "PUT", "/bkt/k", "partNumber=1&uploadId=u", "PUT"}, true},
		{"20:37:41 | vgw | 200 |  1ms | 127.0.0.1 | POST | /bkt/k | - | uploads", Request{200, "POST", "/bkt/k", "uploads", "POST"}, true},
		{"20:37:41 | vgw | 204 |  1ms | 127.0.0.1 | DELETE | /bkt/k | - | ", Request{204, "DELETE", "/bkt/k", "", "DELETE"}, true},
		{"20:37:41 | vgw | 200 |  1ms | 127.0.0.1 | GET | /bkt | - | location", Request{200, "GET", "/bkt", "location", "OTHER"}, true},
		{"20:37:41 | vgw | 200 |  1ms | 127.0.0.1 | HEAD | /bkt | - | ", Request{200, "HEAD", "/bkt", "", "OTHER"}, true},
		{"20:37:41 | vgw | 403 |  1ms | 127.0.0.1 | GET | / | - | ", Request{403, "GET", "/", "", "OTHER"}, true},
		{"│  http://127.0.0.1:17070                                            │", Request{}, false},
		{"No IAM service configured, enabling single account mode", Request{}, false},
	} {
		got, ok := ParseLogLine(tc.line)
		if ok != tc.ok || got != tc.want {
			t.Errorf("ParseLogLine(%q) = %+v, %v; want %+v, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}

func TestServerCountsRequests(t *testing.T) {
	s := Start(t, "bkt")
	s.WriteObject("bkt", "app/0000/a.ltx", []byte("a"))
	before := len(s.Requests())
	// Unsigned requests are refused, and logged all the same.
	for _, p := range []string{"/bkt?list-type=2&prefix=app%2F", "/bkt/app/0000/a.ltx"} {
		resp, err := http.Get(s.Endpoint + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("unsigned GET %s: %s", p, resp.Status)
		}
	}
	reqs := s.AwaitRequests(before, 2)
	if len(reqs) != 2 || reqs[0].Kind != "LIST" || reqs[1].Kind != "GET" || reqs[1].Status != 403 {
		t.Errorf("logged %+v; want a LIST and a GET, both 403", reqs)
	}
	s.Restart()
	resp, err := http.Get(s.Endpoint + "/bkt?list-type=2")
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	resp.Body.Close()
	n := s.CountRequests("LIST")
	for deadline := time.Now().Add(3 * time.Second); n < 2 && time.Now().Before(deadline); n = s.CountRequests("LIST") {
		time.Sleep(20 * time.Millisecond) // the log line can follow the response
	}
	if n != 2 {
		t.Errorf("%d LIST requests across a restart, want 2", n)
	}
}

// fakeTB records Skip and Fatal and ends the goroutine as testing.T would.
type fakeTB struct {
	testing.TB
	skipped, failed bool
}

func (f *fakeTB) Helper()                       {}
func (f *fakeTB) Skip(args ...any)              { f.skipped = true; runtime.Goexit() }
func (f *fakeTB) Fatal(args ...any)             { f.failed = true; runtime.Goexit() }
func (f *fakeTB) Fatalf(string, ...any)         { f.failed = true; runtime.Goexit() }
func (f *fakeTB) Skipf(format string, _ ...any) { f.skipped = true; runtime.Goexit() }

func TestMissingBinary(t *testing.T) {
	t.Chdir(t.TempDir()) // no repository root above
	t.Setenv("WALRUST_BUILD", t.TempDir())
	t.Setenv("PATH", t.TempDir())
	if b := Binary(); b != "" {
		t.Fatalf("found %s", b)
	}
	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		f := &fakeTB{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			Start(f)
		}()
		<-done
		if ci == "true" && (!f.failed || f.skipped) {
			t.Errorf("CI=true: a missing versitygw must fail the test")
		}
		if ci == "" && (!f.skipped || f.failed) {
			t.Errorf("without CI: a missing versitygw must skip the test")
		}
	}
}
