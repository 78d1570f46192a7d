package follow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/walrust/walrust/vfs/store"
)

// A download must keep moving. It may take downloadBase to start, and
// then as long as a transfer at downloadMinRate would take for the bytes
// that have arrived: the deadline moves with what the store has sent,
// never with the size its listing claims. A server that trickles a few
// bytes a second is never silent long enough for the S3 client's read
// timeout, and would otherwise hold the follower for as long as the
// listed size allowed (days, for a listing that claims a terabyte). Past
// its deadline the download fails as the store's fault, and the next poll
// tries again. Variables so that tests can shorten them.
var (
	// downloadBase covers the round trips and a slow start, whatever the size.
	downloadBase = 30 * time.Second
	// downloadMinRate (bytes per second) is the slowest transfer taken for
	// a working one: 1 MiB/s, far below any S3 endpoint's.
	downloadMinRate int64 = 1 << 20
)

// errTooSlow is wrapped by the cause of a download cut off by its budget.
// It wraps context.DeadlineExceeded: to the store's error classes, it is a
// timeout.
var errTooSlow = fmt.Errorf("slower than the slowest transfer taken for a working one: %w", context.DeadlineExceeded)

// openFile opens one listed file for download, bounded in time by its
// budget and in bytes by its listed size (store.LimitBody): both a
// trickle and a body longer than listed fail reads with an error of the
// store, which sourceReader tells from a corrupt file. Close releases the
// budget's timer.
func openFile(ctx context.Context, st store.Reader, fi store.FileInfo) (io.ReadCloser, error) {
	b := startBudget(ctx, "the download of "+fi.String())
	rc, err := st.Open(b.ctx, fi)
	if err != nil {
		b.stop()
		return nil, timedOut(b.ctx, err)
	}
	b.ReadCloser = store.LimitBody(rc, fi, fi.Size)
	return b, nil
}

// budgeted is a body read under a moving deadline (see downloadBase). Read
// is called from one goroutine; the timer's reads received.
type budgeted struct {
	io.ReadCloser
	ctx      context.Context
	cancel   context.CancelCauseFunc
	timer    *time.Timer
	start    time.Time
	received atomic.Int64
}

// startBudget starts the clock of a download named what; the caller opens
// the body with b.ctx and sets b.ReadCloser, or calls stop.
func startBudget(ctx context.Context, what string) *budgeted {
	b := &budgeted{start: time.Now()}
	b.ctx, b.cancel = context.WithCancelCause(ctx)
	b.timer = time.AfterFunc(downloadBase, func() {
		b.cancel(fmt.Errorf("%s had %d bytes after %s: %w", what, b.received.Load(), time.Since(b.start).Round(time.Millisecond), errTooSlow))
	})
	return b
}

func (b *budgeted) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 && b.ctx.Err() == nil {
		got := b.received.Add(int64(n))
		due := b.start.Add(downloadBase + time.Duration(got)*time.Second/time.Duration(downloadMinRate))
		b.timer.Reset(time.Until(due))
	}
	if err != nil && err != io.EOF {
		err = timedOut(b.ctx, err)
	}
	return n, err
}

func (b *budgeted) Close() error {
	defer b.stop()
	return b.ReadCloser.Close()
}

func (b *budgeted) stop() {
	b.timer.Stop()
	b.cancel(context.Canceled)
}

// timedOut names the budget as the reason for err when it ran out; the
// store's own error ("context deadline exceeded") would not say which
// deadline.
func timedOut(ctx context.Context, err error) error {
	// A deadline's cause, and the budget's (errTooSlow), wrap
	// context.DeadlineExceeded; a cancellation's does not.
	cause := context.Cause(ctx)
	if !errors.Is(cause, context.DeadlineExceeded) || errors.Is(err, cause) {
		return err // not a deadline, or err already says so
	}
	return fmt.Errorf("%w: %w", cause, err)
}
