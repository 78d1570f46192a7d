package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walrust/walrust/vfs/internal/testhooks"
)

// history commits n changes to the world's store and returns the
// reference's rows at every TXID from 1, and times that fall between
// commits: between[i] is after TXID i+1 was committed and before TXID i+2.
func (w *world) history(n int) (rows map[uint64][]string, between []time.Time) {
	w.T.Helper()
	rows = map[uint64][]string{1: w.refRows()}
	for range n {
		time.Sleep(5 * time.Millisecond) // LTX timestamps are in milliseconds
		between = append(between, time.Now())
		time.Sleep(5 * time.Millisecond)
		w.Ref.Insert(3)
		txid := w.Commit()
		rows[uint64(txid)] = w.refRows()
	}
	return rows, between
}

// viewAt checks that db shows TXID txid with the rows of that TXID, in a
// new read transaction.
func viewAt(t *testing.T, db *sql.DB, txid uint64, want []string, what string) {
	t.Helper()
	tx, err := db.BeginTx(context.Background(), &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	defer tx.Rollback()
	var got uint64
	if err := tx.QueryRow("SELECT walrust_txid()").Scan(&got); err != nil || got != txid {
		t.Fatalf("%s: walrust_txid() %d (%v), want %d", what, got, err, txid)
	}
	rows, err := tableRows(tx)
	if err != nil || !slices.Equal(rows, want) {
		t.Fatalf("%s: %d rows (%v), want the %d of TXID %d", what, len(rows), err, len(want), txid)
	}
}

// TestAsOfView: as_of= opens the database as of a past TXID (decimal or
// the file names' hex) or time; a view tells what it shows, never changes
// while the live replica beside it follows new files, refuses to wait or
// sync, is built once and reused, and the views kept are bounded, but
// never one that is open.
func TestAsOfView(t *testing.T) {
	w := newWorld(t, 4096, false)
	rows, between := w.history(5) // TXIDs 1..6
	live := w.follow()
	w.waitCaughtUp(live)

	// The live replica's state file gives the view its source.
	v3 := openDB(t, w.uri("as_of=3"))
	viewAt(t, v3, 3, rows[3], "as_of=3")
	var role, asOf, stamp string
	if err := v3.QueryRow("SELECT json_extract(walrust_status(), '$.role'), json_extract(walrust_status(), '$.as_of'), json_extract(walrust_status(), '$.timestamp')").Scan(&role, &asOf, &stamp); err != nil {
		t.Fatal(err)
	}
	if ts, err := time.Parse(time.RFC3339Nano, stamp); role != "view" || asOf != "TXID 3" || err != nil || ts.After(between[2]) || ts.Before(between[1]) {
		t.Fatalf("view status: role %q, as_of %q, timestamp %q (%v); want view, TXID 3, a time between %s and %s", role, asOf, stamp, err, between[1], between[2])
	}
	viewAt(t, openDB(t, w.uri("source="+w.Source+"&as_of=0000000000000002")), 2, rows[2], "as_of in hex")
	viewAt(t, openDB(t, w.uri("as_of="+between[3].Format(time.RFC3339Nano))), 4, rows[4], "as_of a time")

	// The live replica moves on; the view does not.
	w.Ref.Insert(2)
	w.Commit()
	w.waitCaughtUp(live)
	viewAt(t, v3, 3, rows[3], "as_of=3 after the live replica moved on")
	var txid int64
	if err := v3.QueryRow("SELECT walrust_wait(7, 100)").Scan(&txid); err == nil || !strings.Contains(err.Error(), "never changes") {
		t.Fatalf("walrust_wait on a view: %v", err)
	}
	if err := v3.QueryRow("SELECT walrust_sync(100)").Scan(&txid); err == nil || !strings.Contains(err.Error(), "never changes") {
		t.Fatalf("walrust_sync on a view: %v", err)
	}

	// Built once: opening it again in this process, or after every
	// connection closed, reuses it.
	viewAt(t, openDB(t, w.uri("as_of=3")), 3, rows[3], "as_of=3 again")
	if n := strings.Count(w.Logs.String(), `msg="built a view"`); n != 3 {
		t.Fatalf("%d views built, want 3:\n%s", n, w.Logs)
	}

	// At most 2 kept: opening views of TXIDs 5 and 6 (with view 3 still
	// open) evicts the oldest closed ones, never view 3.
	defer testhooks.SetViewsKept(2)()
	for _, txid := range []uint64{5, 6} {
		db := openDB(t, w.uri(fmt.Sprintf("as_of=%d", txid)))
		viewAt(t, db, txid, rows[txid], fmt.Sprintf("as_of=%d", txid))
		db.Close()
	}
	views, _ := filepath.Glob(w.Path + "-asof/txid-*")
	if len(views) > 3 || !slices.Contains(views, w.Path+"-asof/txid-3") {
		t.Fatalf("views kept: %v; want view 3 (open) and at most 2 others", views)
	}
	viewAt(t, v3, 3, rows[3], "as_of=3, kept while open")
}

// TestAsOfViewRefusals: a point the store does not hold fails the open
// with a message that names what it holds; an open that may not create
// files cannot build a view (but can read a built one); a view of another
// source under the same name is refused.
func TestAsOfViewRefusals(t *testing.T) {
	w := newWorld(t, 4096, false)
	w.history(2) // TXIDs 1..3
	live := w.follow()
	w.waitCaughtUp(live)

	openFails(t, w.uri("as_of=2000-01-01T00:00:00Z"))
	openFails(t, w.uri("as_of=99"))
	logs := w.Logs.String()
	if !strings.Contains(logs, "oldest") || !strings.Contains(logs, "TXID 99") {
		t.Fatalf("the failed opens did not say what the store holds:\n%s", logs)
	}
	openFails(t, w.uri("as_of=2&mode=ro"))
	if _, err := os.Stat(w.Path + "-asof/txid-2"); err == nil {
		t.Fatal("a read-only open built a view")
	}
	var n int
	for _, params := range []string{"as_of=2", "as_of=2&mode=ro"} {
		db := openDB(t, w.uri(params))
		if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
			t.Fatalf("%s, once built: %v", params, err)
		}
		db.Close() // so that the next open finds the view on disk
	}
	openFails(t, w.uri("source=file://"+t.TempDir()+"&as_of=2"))
	if !strings.Contains(w.Logs.String(), "was built from") {
		t.Fatalf("the view of another source was not refused by name:\n%s", w.Logs)
	}
}
