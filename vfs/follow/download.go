package follow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/walrust/walrust/vfs/store"
)

// A download's time budget grows with the file's listed size: a server
// that trickles a few bytes a second is never silent long enough for the
// S3 client's read timeout, and would otherwise hold the follower forever.
// Past its budget the download fails as the store's fault, and the next
// poll tries again. Variables so that tests can shorten them.
var (
	// downloadBase covers the round trips and a slow start, whatever the size.
	downloadBase = 30 * time.Second
	// downloadMinRate (bytes per second) is the slowest transfer taken for
	// a working one: 1 MiB/s, far below any S3 endpoint's.
	downloadMinRate int64 = 1 << 20
)

// downloadBudget is how long fetching size bytes may take.
func downloadBudget(size int64) time.Duration {
	return downloadBase + time.Duration(max(size, 0)/downloadMinRate)*time.Second
}

// openFile opens one listed file for download, bounded in time by its
// budget and in bytes by its listed size (store.LimitBody): both a
// trickle and a body longer than listed fail reads with an error of the
// store, which sourceReader tells from a corrupt file. Close releases the
// budget's timer.
func openFile(ctx context.Context, st store.Reader, fi store.FileInfo) (io.ReadCloser, error) {
	budget := downloadBudget(fi.Size)
	ctx, cancel := context.WithTimeoutCause(ctx, budget,
		fmt.Errorf("the download of %s (%d bytes) took longer than %s", fi, fi.Size, budget))
	rc, err := st.Open(ctx, fi)
	if err != nil {
		cancel()
		return nil, timedOut(ctx, err)
	}
	return &budgeted{ReadCloser: store.LimitBody(rc, fi, fi.Size), ctx: ctx, cancel: cancel}, nil
}

type budgeted struct {
	io.ReadCloser
	ctx    context.Context
	cancel context.CancelFunc
}

func (b *budgeted) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = timedOut(b.ctx, err)
	}
	return n, err
}

func (b *budgeted) Close() error {
	defer b.cancel()
	return b.ReadCloser.Close()
}

// timedOut names the budget as the reason for err when it ran out; the
// store's own error ("context deadline exceeded") would not say which
// deadline.
func timedOut(ctx context.Context, err error) error {
	cause := context.Cause(ctx)
	if ctx.Err() != context.DeadlineExceeded || errors.Is(err, cause) {
		return err // not the budget, or err already says so
	}
	return fmt.Errorf("%w: %w", cause, err)
}
