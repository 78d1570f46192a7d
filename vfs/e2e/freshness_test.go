package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestFreshnessFunctions: walrust_txid(), walrust_status() and
// walrust_lag() answer what the PRAGMAs do, as values SQL can use; a
// transaction keeps the TXID it began with; a connection whose main
// database is not a replica gets an error that says so.
func TestFreshnessFunctions(t *testing.T) {
	e := newWorld(t, 4096, false)
	db := e.follow()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	var txid, pragma int64
	var role string
	if err := conn.QueryRowContext(ctx, "SELECT walrust_txid(), json_extract(walrust_status(), '$.role')").Scan(&txid, &role); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRowContext(ctx, "PRAGMA walrust_txid").Scan(&pragma); err != nil {
		t.Fatal(err)
	}
	if txid != 1 || pragma != txid || role != "follower" {
		t.Fatalf("walrust_txid() %d, PRAGMA walrust_txid %d, role %q; want 1, 1, follower", txid, pragma, role)
	}

	// Inside a read transaction the function answers the pinned TXID.
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	e.Ref.Insert(3)
	next := e.Commit()
	watcher := openDB(t, e.followURI("")) // db's one connection is in tx
	eventually(t, fmt.Sprintf("the replica at TXID %d", next), func() error {
		var st string
		if err := watcher.QueryRow("PRAGMA walrust_status").Scan(&st); err != nil {
			return err
		}
		if !strings.Contains(st, fmt.Sprintf(`"txid":%d`, next)) {
			return fmt.Errorf("status %s", st)
		}
		return nil
	})
	if err := tx.QueryRow("SELECT walrust_txid()").Scan(&txid); err != nil || txid != 1 {
		t.Fatalf("walrust_txid() in a transaction begun at TXID 1: %d, %v", txid, err)
	}
	tx.Rollback()
	if err := conn.QueryRowContext(ctx, "SELECT walrust_txid()").Scan(&txid); err != nil || txid != int64(next) {
		t.Fatalf("walrust_txid() after the transaction: %d, %v; want %d", txid, err, next)
	}

	// Another database as main: the functions say it is not a replica.
	other := openDB(t, "file:"+e.Dir+"/plain.db")
	err = other.QueryRow("SELECT walrust_txid()").Scan(&txid)
	if err == nil || !strings.Contains(err.Error(), "not a walrust replica") {
		t.Fatalf("walrust_txid() on a plain database: %v", err)
	}
}

// TestLagStaysNearIntervalWhenIdle: on an idle primary, walrust_lag()
// (since the replica was last confirmed current) stays below twice the
// poll interval, while the commit's age (commit_age_seconds) grows.
func TestLagStaysNearIntervalWhenIdle(t *testing.T) {
	const interval = 300 * time.Millisecond
	e := newWorld(t, 4096, false)
	db := openDB(t, e.uri(fmt.Sprintf("source=%s&interval=%s", e.Source, interval)))
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var worst float64
	for time.Since(start) < 3*time.Second {
		var lag float64
		if err := db.QueryRow("SELECT walrust_lag()").Scan(&lag); err != nil {
			t.Fatal(err)
		}
		worst = max(worst, lag)
		time.Sleep(50 * time.Millisecond)
	}
	var age float64
	if err := db.QueryRow("SELECT json_extract(walrust_status(), '$.commit_age_seconds')").Scan(&age); err != nil {
		t.Fatal(err)
	}
	t.Logf("worst walrust_lag() %.3fs over 3s at interval %s; commit age %.1fs", worst, interval, age)
	if worst >= 2*interval.Seconds() {
		t.Errorf("walrust_lag() reached %.3fs on an idle primary; want below 2 × interval (%s)", worst, 2*interval)
	}
	if age < 2.9 {
		t.Errorf("commit_age_seconds %.1f after 3s idle; want it to grow", age)
	}
}

// TestWaitAndSync: at interval=5s, walrust_wait(N) returns once file N is
// published, well before the next tick, and the next query sees it;
// walrust_sync() likewise reaches what the store holds. Inside a read
// transaction pinned below the target, both say so; a TXID never
// published times out saying where the replica is.
func TestWaitAndSync(t *testing.T) {
	e := newWorld(t, 4096, false)
	db := openDB(t, e.uri("source="+e.Source+"&interval=5s"))
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // past the first poll: the next tick is ~5s away

	e.Ref.Insert(2)
	want := e.Commit()
	start := time.Now()
	var got int64
	if err := db.QueryRow("SELECT walrust_wait(?, 3000)", want).Scan(&got); err != nil || got < int64(want) {
		t.Fatalf("walrust_wait(%d, 3000) = %d, %v", want, got, err)
	}
	waited := time.Since(start)
	var txid int64
	if err := db.QueryRow("SELECT walrust_txid()").Scan(&txid); err != nil || txid != int64(want) {
		t.Fatalf("after walrust_wait: walrust_txid() %d, %v; want %d", txid, err, want)
	}

	e.Ref.Insert(2)
	want = e.Commit()
	start = time.Now()
	if err := db.QueryRow("SELECT walrust_sync()").Scan(&got); err != nil || got != int64(want) {
		t.Fatalf("walrust_sync() = %d, %v; want %d", got, err, want)
	}
	synced := time.Since(start)
	t.Logf("walrust_wait returned after %s, walrust_sync after %s (interval 5s)", waited.Round(time.Millisecond), synced.Round(time.Millisecond))
	if waited > 2500*time.Millisecond || synced > 2500*time.Millisecond {
		t.Errorf("walrust_wait took %s, walrust_sync %s: not well before the next tick of a 5s interval", waited, synced)
	}

	// Pinned below the target.
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	e.Ref.Insert(1)
	want = e.Commit()
	err = tx.QueryRow("SELECT walrust_wait(?, 3000)", want).Scan(&got)
	if err == nil || !strings.Contains(err.Error(), "read transaction at TXID") {
		t.Fatalf("walrust_wait inside a transaction pinned below: %d, %v", got, err)
	}
	tx.Rollback()

	// A TXID never published.
	err = db.QueryRow("SELECT walrust_wait(?, 200)", want+10).Scan(&got)
	if err == nil || !strings.Contains(err.Error(), "timed out") || !strings.Contains(err.Error(), "replica is at TXID") {
		t.Fatalf("walrust_wait of a TXID never published: %v", err)
	}
	for _, q := range []string{"SELECT walrust_wait(NULL)", "SELECT walrust_wait(0)", "SELECT walrust_sync(-1)"} {
		if err := db.QueryRow(q).Scan(&got); err == nil {
			t.Errorf("%s: no error", q)
		}
	}
}
