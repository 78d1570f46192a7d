package store

import (
	"context"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/superfly/ltx"
)

// OpenLater is Open for a store that cannot be reached yet (IsUnreachable):
// the store it returns opens rawURL at its first use, and again at every
// use until an open succeeds, returning the open's error meanwhile.
func OpenLater(rawURL string, opts Options) Store {
	return &lazy{source: rawURL, opts: opts}
}

type lazy struct {
	source  string
	opts    Options
	opening sync.Mutex // one open at a time
	st      atomic.Pointer[Store]
}

func (l *lazy) get(ctx context.Context) (Store, error) {
	if st := l.st.Load(); st != nil {
		return *st, nil
	}
	l.opening.Lock()
	defer l.opening.Unlock()
	if st := l.st.Load(); st != nil {
		return *st, nil
	}
	st, err := Open(ctx, l.source, l.opts)
	if err != nil {
		return nil, err
	}
	l.st.Store(&st)
	return st, nil
}

func (l *lazy) ListAfter(ctx context.Context, level int, after ltx.TXID) ([]FileInfo, error) {
	st, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return st.ListAfter(ctx, level, after)
}

func (l *lazy) Open(ctx context.Context, f FileInfo) (io.ReadCloser, error) {
	st, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return st.Open(ctx, f)
}

func (l *lazy) Put(ctx context.Context, f FileInfo, r io.Reader) error {
	st, err := l.get(ctx)
	if err != nil {
		return err
	}
	return st.Put(ctx, f, r)
}

func (l *lazy) Delete(ctx context.Context, f FileInfo) error {
	st, err := l.get(ctx)
	if err != nil {
		return err
	}
	return st.Delete(ctx, f)
}

// Stats does not wait for an open in progress: a status query must not
// stall while the store does not answer.
func (l *lazy) Stats() Stats {
	if st := l.st.Load(); st != nil {
		return (*st).Stats()
	}
	return Stats{}
}

// String is the source without its query (endpoint, region): what the
// opened store would say.
func (l *lazy) String() string {
	s, _, _ := strings.Cut(l.source, "?")
	return s
}
