package follow

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/walrust/walrust/vfs/store"
)

// trickleStore serves every file as one byte per tick, whatever its
// listing claims, until the request's context ends.
type trickleStore struct {
	store.Store
	tick time.Duration
}

func (s trickleStore) Open(ctx context.Context, fi store.FileInfo) (io.ReadCloser, error) {
	return io.NopCloser(&trickle{ctx: ctx, tick: s.tick}), nil
}

type trickle struct {
	ctx  context.Context
	tick time.Duration
}

func (t *trickle) Read(p []byte) (int, error) {
	select {
	case <-t.ctx.Done():
		return 0, t.ctx.Err() // what an HTTP body gives when its request ends
	case <-time.After(t.tick):
		p[0] = 'x'
		return 1, nil
	}
}

// TestDownloadBudgetMovesWithBytes: a download's deadline grew with the
// size the listing claimed, so a store that listed a terabyte and sent a
// byte every few milliseconds held the follower for about eleven days. The
// deadline now moves only with the bytes that arrived; the download fails
// as a slow store's fault (a timeout), naming the file and what it got.
func TestDownloadBudgetMovesWithBytes(t *testing.T) {
	defer setDownloadBudget(200*time.Millisecond, 1<<20)()
	fi := store.FileInfo{Level: 0, MinTXID: 2, MaxTXID: 2, Size: 1 << 40}
	rc, err := openFile(context.Background(), trickleStore{tick: 5 * time.Millisecond}, fi)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, rc)
		done <- err
	}()
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a download listed at 1 TiB that trickles was still running after 10 s (its budget is 200 ms plus what it sent at 1 MiB/s)")
	}
	if !errors.Is(err, errTooSlow) || !errors.Is(err, context.DeadlineExceeded) || !store.IsUnreachable(err) {
		t.Fatalf("trickle ended with %v; want the budget's timeout", err)
	}
	if !strings.Contains(err.Error(), fi.String()) || !strings.Contains(err.Error(), "bytes after") {
		t.Errorf("the error does not say which file and how far it got: %v", err)
	}
}

// TestDownloadBudgetCredits: bytes that arrived earn time. A download that
// sent its first part fast and then paused, for less than the part earned,
// goes on.
func TestDownloadBudgetCredits(t *testing.T) {
	defer setDownloadBudget(100*time.Millisecond, 1<<20)()
	fi := store.FileInfo{Level: 0, MinTXID: 2, MaxTXID: 2, Size: 2 << 20}
	rc, err := openFile(context.Background(), pausingStore{first: 1 << 20, pause: 500 * time.Millisecond}, fi)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	if err != nil || n != fi.Size {
		t.Fatalf("read %d of %d bytes: %v; 1 MiB earns a second, the pause is 500 ms", n, fi.Size, err)
	}
}

// pausingStore sends first bytes at once, pauses, then sends the rest.
type pausingStore struct {
	store.Store
	first int64
	pause time.Duration
}

func (s pausingStore) Open(ctx context.Context, fi store.FileInfo) (io.ReadCloser, error) {
	paused := readerFunc(func(p []byte) (int, error) {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(s.pause):
			return 0, io.EOF
		}
	})
	return io.NopCloser(io.MultiReader(io.LimitReader(zeroReader{}, s.first), paused, io.LimitReader(zeroReader{}, fi.Size-s.first))), nil
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
