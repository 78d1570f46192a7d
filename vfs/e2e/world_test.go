package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/walrust/walrust/vfs/internal/testhooks"
	"github.com/walrust/walrust/vfs/testkit/testtool"
	"github.com/walrust/walrust/vfs/testkit/worldtest"
)

// The tests' world on a file store: worldtest's reference database, the
// store it publishes to and the replica's path; here, the replica opened
// by URI through database/sql, walrust's log, and waits on the replica's
// status.

// world is one test's worldtest.World, whose Logs get walrust's log.
type world struct {
	*worldtest.World
}

// newWorld makes a reference database with table t at pageSize, publishes
// its first image as a snapshot at TXID 1 unless noSnapshot, and captures
// walrust's log.
func newWorld(t *testing.T, pageSize int, noSnapshot bool) *world {
	t.Helper()
	w := &world{worldtest.New(t, worldtest.Options{PageSize: pageSize})}
	restore := testhooks.SetLogger(slog.New(slog.NewTextHandler(w.Logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() {
		restore()
		if t.Failed() {
			t.Logf("walrust log:\n%s", w.Logs)
		}
	})
	if !noSnapshot {
		w.Snapshot()
	}
	return w
}

// uri is the replica's URI with the given parameters after vfs=walrust.
func (w *world) uri(params string) string {
	return "file:" + w.Path + "?vfs=walrust&" + params
}

// followURI is the replica's URI following the store at a 20ms
// interval, and the parameters extra (each after an &).
func (w *world) followURI(extra string) string {
	return w.uri("source=" + w.Source + "&interval=20ms" + extra)
}

// openReplica opens followURI(extra) through database/sql until the test
// ends, with as many connections as the test asks for.
func (w *world) openReplica(extra string) *sql.DB {
	w.T.Helper()
	db, err := sql.Open("sqlite3", w.followURI(extra))
	if err != nil {
		w.T.Fatal(err)
	}
	w.T.Cleanup(func() { closeDB(w.T, db) })
	return db
}

// closeDB closes db and waits until its connections are closed: a
// connection whose query a context ended goes back to the pool, and is
// closed, by a goroutine of database/sql after Close returns. Until then
// the replica is open and its follower may write in the test's temporary
// directory while it is removed.
func closeDB(t testing.TB, db *sql.DB) {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	for deadline := time.Now().Add(10 * time.Second); db.Stats().OpenConnections > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("%d connections still open 10 s after Close", db.Stats().OpenConnections)
			return
		}
	}
}

// follow opens the replica following the store at a 20ms interval, one
// connection at a time, and checks that it opens.
func (w *world) follow() *sql.DB {
	w.T.Helper()
	db := w.openReplica("")
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		w.T.Fatalf("open replica: %v", err)
	}
	return db
}

// openDB opens uri through database/sql, one connection at a time, until
// the test ends.
func openDB(t testing.TB, uri string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", uri)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { closeDB(t, db) })
	return db
}

// openFails opens uri, expects the open to fail, and returns how long it
// took.
func openFails(t testing.TB, uri string) time.Duration {
	t.Helper()
	db, err := sql.Open("sqlite3", uri)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	err = db.Ping()
	took := time.Since(start)
	if err == nil {
		var n int
		err = db.QueryRow("SELECT count(*) FROM sqlite_schema").Scan(&n)
	}
	if err == nil {
		t.Fatalf("open %s succeeded", uri)
	}
	return took
}

// nothingCreated checks that no file of a replica at path exists.
func nothingCreated(t testing.TB, path string) {
	t.Helper()
	for _, p := range []string{path, path + "-replica-state"} {
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("%s left behind by a failed open", p)
		}
	}
}

// querier is a *sql.DB, a *sql.Conn or a *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// tableRows is the content of t, one string per row.
func tableRows(db querier) ([]string, error) {
	rows, err := db.QueryContext(context.Background(), "SELECT id, k, hex(v) FROM t ORDER BY id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id int64
		var k, v string
		if err := rows.Scan(&id, &k, &v); err != nil {
			return nil, err
		}
		out = append(out, fmt.Sprintf("%d|%s|%s", id, k, v))
	}
	return out, rows.Err()
}

// refRows is the reference's content of t.
func (w *world) refRows() []string {
	w.T.Helper()
	r, err := tableRows(w.Ref.DB)
	if err != nil {
		w.T.Fatal(err)
	}
	return r
}

// replicaStatus is PRAGMA walrust_status.
type replicaStatus struct {
	Source     string    `json:"source"`
	Path       string    `json:"path"`
	TXID       uint64    `json:"txid"`
	LastError  string    `json:"last_error"`
	Bootstraps int64     `json:"bootstraps"`
	Interval   string    `json:"interval"`
	LastPoll   time.Time `json:"last_poll"`
}

func status(t testing.TB, db *sql.DB) replicaStatus {
	t.Helper()
	var s string
	if err := db.QueryRow("PRAGMA walrust_status").Scan(&s); err != nil {
		t.Fatalf("walrust_status: %v", err)
	}
	var st replicaStatus
	if err := json.Unmarshal([]byte(s), &st); err != nil {
		t.Fatalf("walrust_status %q: %v", s, err)
	}
	return st
}

// eventually polls cond until it returns nil, for up to 10 seconds.
func eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	testtool.Eventually(t, what, 10*time.Second, cond)
}

// waitCaughtUp waits until the replica serves the reference's content at
// the primary's TXID.
func (w *world) waitCaughtUp(db *sql.DB) {
	w.T.Helper()
	want := w.refRows()
	eventually(w.T, fmt.Sprintf("TXID %d", w.Pub.TXID), func() error {
		var txid uint64
		if err := db.QueryRow("PRAGMA walrust_txid").Scan(&txid); err != nil {
			return err
		}
		if txid != uint64(w.Pub.TXID) {
			return fmt.Errorf("at TXID %d", txid)
		}
		return nil
	})
	w.checkRows(db, want, "caught up")
}

// checkRows fails the test unless db's t holds want.
func (w *world) checkRows(db querier, want []string, what string) {
	w.T.Helper()
	got, err := tableRows(db)
	if err != nil {
		w.T.Fatalf("%s: query: %v", what, err)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		w.T.Fatalf("%s: replica has %d rows, want %d (content differs)", what, len(got), len(want))
	}
}

// waitPolls waits until the follower has polled n more times.
func waitPolls(t testing.TB, db *sql.DB, n int) {
	t.Helper()
	last := status(t, db).LastPoll
	for i := range n {
		eventually(t, fmt.Sprintf("poll %d", i+1), func() error {
			if p := status(t, db).LastPoll; !p.After(last) {
				return fmt.Errorf("last poll still %s", p)
			} else {
				last = p
			}
			return nil
		})
	}
}

// waitNoError waits until the status reports no error: the poll that
// recovered has finished.
func waitNoError(t testing.TB, db *sql.DB) replicaStatus {
	t.Helper()
	var st replicaStatus
	eventually(t, "last_error to clear", func() error {
		if st = status(t, db); st.LastError != "" {
			return fmt.Errorf("last_error %q", st.LastError)
		}
		return nil
	})
	return st
}

// waitError waits until the status's last_error contains every part.
func waitError(t testing.TB, db *sql.DB, parts ...string) replicaStatus {
	t.Helper()
	var st replicaStatus
	eventually(t, fmt.Sprintf("last_error with %q", parts), func() error {
		st = status(t, db)
		for _, p := range parts {
			if !strings.Contains(st.LastError, p) {
				return fmt.Errorf("last_error %q", st.LastError)
			}
		}
		return nil
	})
	return st
}
