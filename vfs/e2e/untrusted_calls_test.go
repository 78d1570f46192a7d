package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// What SQL that the application does not trust can do with walrust's SQL
// functions (README "Security"): hold its connection no longer than the
// open's timeout allows.

// TestWaitTimeoutBounded: walrust_wait's and walrust_sync's timeout_ms
// is cut to the open's timeout=, so one statement holds its connection no
// longer than the application allowed, whatever SQL asks: the wait runs
// in Go and neither sqlite3_interrupt nor a progress handler can end it
// (before, walrust_wait(N, 1e12) held the connection for 31 years). And a
// timeout_ms whose nanoseconds overflow an int64 is a long one, not none
// (before, walrust_wait(N, 9223372036854775807) and walrust_sync(9e15)
// failed at once with "timed out").
func TestWaitTimeoutBounded(t *testing.T) {
	e := newWorld(t, 4096, false)
	e.Ref.Insert(1)
	head := e.Commit()
	db := openDB(t, e.followURI("&timeout=1s"))
	e.waitCaughtUp(db)

	for _, ms := range []string{"1000000000000", "9223372036854775807"} {
		start := time.Now()
		var got int64
		err := db.QueryRow("SELECT walrust_wait(?, "+ms+")", head+10).Scan(&got)
		took := time.Since(start)
		if err == nil || !strings.Contains(err.Error(), "timed out") {
			t.Fatalf("walrust_wait(%d, %s) = %d, %v; want a time-out", head+10, ms, got, err)
		}
		if took < 900*time.Millisecond || took > 10*time.Second {
			t.Fatalf("walrust_wait(%d, %s) failed after %s; want the open's timeout, 1s", head+10, ms, took)
		}
		if !strings.Contains(err.Error(), "timeout=1s") {
			t.Errorf("walrust_wait(%d, %s): %v; want it to say the open's timeout cut the wait", head+10, ms, err)
		}
	}
	var got int64
	if err := db.QueryRow("SELECT walrust_sync(9000000000000000)").Scan(&got); err != nil || got != int64(head) {
		t.Fatalf("walrust_sync(9000000000000000) = %d, %v; want %d", got, err, head)
	}
	// The PRAGMA the functions call is bounded alike.
	start := time.Now()
	var answer string
	if err := db.QueryRow(fmt.Sprintf("PRAGMA walrust_call_wait='%d,1000000000000'", head+10)).Scan(&answer); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*time.Second || !strings.HasPrefix(answer, "error:") {
		t.Fatalf("PRAGMA walrust_call_wait: %q after %s", answer, took)
	}
}
