package vfs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/superfly/ltx"
	"github.com/walrust/walrust/vfs/replica"
)

// The SQL functions that take arguments or can fail with a message
// (sqlfunc.c) reach a connection's replica as PRAGMAs named walrust_call_*
// through SQLITE_FCNTL_PRAGMA, whose error path carries only a code: the
// answer is "ok:VALUE" or "error:MESSAGE", and the C side turns the
// second into the function's error.

// call answers one walrust_call_* PRAGMA.
func (f *dbFile) call(name string, value *string) string {
	var arg string
	if value != nil {
		arg = *value
	}
	var (
		txid ltx.TXID
		err  error
	)
	switch name {
	case "walrust_call_wait":
		txid, err = f.callWait(arg)
	case "walrust_call_sync":
		txid, err = f.callSync(arg)
	default:
		err = fmt.Errorf("no such call")
	}
	if err != nil {
		return "error:" + err.Error()
	}
	return "ok:" + strconv.FormatUint(uint64(txid), 10)
}

// callWait is walrust_wait(txid [, timeout_ms]).
func (f *dbFile) callWait(arg string) (ltx.TXID, error) {
	first, rest, _ := strings.Cut(arg, ",")
	want, err := strconv.ParseUint(strings.TrimSpace(first), 10, 64)
	if err != nil || want == 0 {
		return 0, fmt.Errorf("walrust_wait(%s): the TXID must be a positive integer", first)
	}
	ctx, cancel, err := f.callContext("walrust_wait", rest)
	if err != nil {
		return 0, err
	}
	defer cancel()
	if err := f.pinnedBelow("walrust_wait", ltx.TXID(want)); err != nil {
		return 0, err
	}
	got, err := f.s.waitTXID(ctx, ltx.TXID(want))
	if err != nil {
		return got, fmt.Errorf("walrust_wait(%d): %w", want, cutShort(ctx, err))
	}
	return got, nil
}

// callSync is walrust_sync([timeout_ms]).
func (f *dbFile) callSync(arg string) (ltx.TXID, error) {
	ctx, cancel, err := f.callContext("walrust_sync", arg)
	if err != nil {
		return 0, err
	}
	defer cancel()
	got, err := f.s.sync(ctx)
	if err != nil {
		return got, fmt.Errorf("walrust_sync(): %w", cutShort(ctx, err))
	}
	return got, f.pinnedBelow("walrust_sync", got)
}

// callContext bounds a call by its timeout_ms argument, or by the open's
// timeout= when it has none, and never longer than that: the call waits
// in Go, where neither sqlite3_interrupt nor a progress handler reaches,
// so SQL that the application does not trust could otherwise hold the
// connection for as long as it asks (README "Security"). A cut timeout
// says so when it expires.
func (f *dbFile) callContext(fn, ms string) (context.Context, context.CancelFunc, error) {
	longest := f.s.cfg.Timeout
	timeout := longest
	if ms = strings.TrimSpace(ms); ms != "" {
		n, err := strconv.ParseInt(ms, 10, 64)
		if err != nil || n < 0 {
			return nil, nil, fmt.Errorf("%s: timeout_ms %q must be a non-negative integer", fn, ms)
		}
		// Compared in milliseconds: n of them in a Duration may overflow.
		if n <= longest.Milliseconds() {
			timeout = time.Duration(n) * time.Millisecond
		} else {
			ctx, cancel := context.WithTimeoutCause(context.Background(), longest,
				fmt.Errorf("timeout_ms %d is cut to the open's timeout=%s", n, longest))
			return ctx, cancel, nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	return ctx, cancel, nil
}

// cutShort adds to a call's error, when its timeout_ms was cut to the
// open's timeout and has run out, that it was.
func cutShort(ctx context.Context, err error) error {
	cause := context.Cause(ctx)
	if cause == nil || errors.Is(cause, context.DeadlineExceeded) || errors.Is(cause, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w (%v)", err, cause)
}

// pinnedBelow says so when this connection is in a read transaction that
// cannot see txid: it would keep reading the older TXID whatever the
// replica holds.
func (f *dbFile) pinnedBelow(fn string, txid ltx.TXID) error {
	if f.pinned != nil && f.pinned.TXID < txid {
		return fmt.Errorf("%s: this connection is in a read transaction at TXID %d, which cannot see TXID %d; end the transaction first", fn, f.pinned.TXID, txid)
	}
	return nil
}

// waitTXID waits until the replica holds txid, in either role: the
// follower polls on demand; a reader of a replica another process follows
// looks at the file until that process has applied it.
func (s *shared) waitTXID(ctx context.Context, txid ltx.TXID) (ltx.TXID, error) {
	s.mu.Lock()
	h, p := s.lead, s.passive
	s.mu.Unlock()
	if h != nil {
		return h.WaitTXID(ctx, txid)
	}
	if p == nil {
		return 0, replica.ErrNoReplica
	}
	var at ltx.TXID
	for view := s.isView(); ; {
		if v, err := p.Begin(); err == nil {
			at = v.TXID
			p.End()
		}
		if at >= txid {
			return at, nil
		}
		if view {
			return at, fmt.Errorf("this is a view as of %s, which never changes: it shows TXID %d", s.cfg.AsOf, at)
		}
		select {
		case <-ctx.Done():
			return at, fmt.Errorf("timed out: another process follows this replica and has applied TXID %d so far", at)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// sync is Sync for the follower; a reader cannot make another process
// poll.
func (s *shared) sync(ctx context.Context) (ltx.TXID, error) {
	s.mu.Lock()
	h := s.lead
	s.mu.Unlock()
	if s.isView() {
		return 0, fmt.Errorf("this is a view as of %s, which never changes: open the database without as_of= to follow the store", s.cfg.AsOf)
	}
	if h == nil {
		return 0, errors.New("another process follows this replica, and only it can poll the store; use walrust_wait(txid) here")
	}
	return h.Sync(ctx)
}

// isView says the entry is an as_of view (set once, when it starts).
func (s *shared) isView() bool { return !s.cfg.AsOf.IsZero() }
