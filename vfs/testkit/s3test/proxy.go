package s3test

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Fault is how a Proxy misbehaves on a request.
type Fault int

const (
	// Hang answers nothing until the client gives up: a server that
	// accepted the connection and went silent.
	Hang Fault = iota
	// Trickle sends the response headers, then the body one byte every
	// 100 ms: never silent long enough for a read timeout to fire, and
	// minutes long for any LTX file.
	Trickle
	// Longer sends the whole object, then LongerBy bytes of junk, chunked
	// (no Content-Length): a body longer than the listing said, as from an
	// object replaced since, or a hostile server.
	Longer
)

// Proxy stands between a client and an S3 server (versitygw) and, when
// told, misbehaves on some requests. Its zero state forwards everything.
type Proxy struct {
	URL      string // http://127.0.0.1:PORT, to use as the endpoint
	LongerBy int64  // junk bytes a Longer fault appends; 16 MiB unless set before use

	rp     *httputil.ReverseProxy
	closed chan struct{} // closed at cleanup: hung requests end

	mu    sync.Mutex
	rules []*rule // guarded by mu; the first that matches a request applies

	seen atomic.Int64 // requests received
}

type rule struct {
	kind  string // as Request.Kind ("GET", "LIST", ...); "" matches every request
	fault Fault
	left  int // requests still to fail; < 0: all of them
}

type faultKey struct{}

// NewProxy starts a proxy to endpoint, closed when the test ends.
func NewProxy(tb testing.TB, endpoint string) *Proxy {
	tb.Helper()
	target, err := url.Parse(endpoint)
	if err != nil {
		tb.Fatal(err)
	}
	p := &Proxy{rp: httputil.NewSingleHostReverseProxy(target), closed: make(chan struct{}), LongerBy: 16 << 20}
	p.rp.FlushInterval = -1 // a trickle reaches the client as it is written
	p.rp.ModifyResponse = p.modify
	p.rp.ErrorLog = log.New(io.Discard, "", 0) // clients that give up on a fault are expected
	ts := httptest.NewServer(p)
	tb.Cleanup(ts.Close)
	tb.Cleanup(func() { // runs before ts.Close, which waits for requests in flight
		close(p.closed)
		ts.CloseClientConnections()
	})
	p.URL = ts.URL
	return p
}

// Misbehave makes the next n requests of kind ("GET", "LIST", ...; "" for
// any) suffer fault; n < 0 makes it every such request until Behave.
func (p *Proxy) Misbehave(kind string, fault Fault, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, &rule{kind: kind, fault: fault, left: n})
}

// Behave forgets every fault: requests from now on are forwarded as they are.
func (p *Proxy) Behave() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = nil
}

// Seen is how many requests the proxy has received.
func (p *Proxy) Seen() int64 { return p.seen.Load() }

// fault picks the fault for a request, if any, and counts it.
func (p *Proxy) fault(r *http.Request) (Fault, bool) {
	kind := kindOf(r.Method, r.URL.Path, r.URL.RawQuery)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ru := range p.rules {
		if ru.left == 0 || (ru.kind != "" && ru.kind != kind) {
			continue
		}
		if ru.left > 0 {
			ru.left--
		}
		return ru.fault, true
	}
	return 0, false
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.seen.Add(1)
	f, ok := p.fault(r)
	if ok && f == Hang {
		select {
		case <-r.Context().Done():
		case <-p.closed:
		}
		return
	}
	if ok {
		r = r.WithContext(context.WithValue(r.Context(), faultKey{}, f))
	}
	p.rp.ServeHTTP(w, r)
}

// modify applies a body fault to the server's answer.
func (p *Proxy) modify(resp *http.Response) error {
	f, ok := resp.Request.Context().Value(faultKey{}).(Fault)
	if !ok || resp.StatusCode >= 300 {
		return nil
	}
	switch f {
	case Trickle:
		resp.Body = &trickle{ReadCloser: resp.Body, ctx: resp.Request.Context(), closed: p.closed}
	case Longer:
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(resp.Body, io.LimitReader(junk{}, p.LongerBy)), resp.Body}
		resp.ContentLength = -1
		resp.Header.Del("Content-Length")
	}
	return nil
}

// trickle passes its body one byte every 100 ms.
type trickle struct {
	io.ReadCloser
	ctx    context.Context
	closed chan struct{}
}

func (t *trickle) Read(p []byte) (int, error) {
	select {
	case <-t.ctx.Done():
		return 0, t.ctx.Err()
	case <-t.closed:
		return 0, io.ErrUnexpectedEOF
	case <-time.After(100 * time.Millisecond):
	}
	return t.ReadCloser.Read(p[:min(len(p), 1)])
}

// junk is an endless stream of 'x'.
type junk struct{}

func (junk) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}
