package e2e

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"
)

// TestExclusiveViaAttachExpires: SQLite sends PRAGMA locking_mode to the
// VFS of one database only (main, without a schema name), but applies a
// mode set without a schema name to every database, and to every database
// ATTACHed afterwards, so walrust cannot refuse it there: the connection
// never drops its SHARED lock on the replica and stays at one TXID. What
// bounds it is max_held: once the versions it holds back pass the limit,
// it expires, and its reads fail instead of holding the log for good (the
// README's Security section says to deny the PRAGMA to untrusted SQL).
// The connection itself may go on serving the pages it cached, which in
// exclusive mode SQLite never checks again.
func TestExclusiveViaAttachExpires(t *testing.T) {
	e := newWorld(t, 4096, false)
	e.Ref.Insert(3)
	e.Commit()
	follower := openDB(t, e.followURI("&max_held=16KiB"))
	e.waitCaughtUp(follower)

	db, err := sql.Open("sqlite3", "file:attackmem?mode=memory&cache=private")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	defer db.Close()
	var mode string
	if err := db.QueryRow("PRAGMA locking_mode=exclusive").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(fmt.Sprintf("ATTACH '%s' AS r", e.uri("interval=20ms"))); err != nil {
		t.Fatal(err)
	}
	count := func() (int, error) {
		var n int
		err := db.QueryRow("SELECT count(*) FROM r.t").Scan(&n)
		return n, err
	}
	before, err := count()
	if err != nil {
		t.Fatal(err)
	}
	// The connection may serve its cached pages from then on (in exclusive
	// mode SQLite never checks the file for changes): the same rows, or
	// an I/O error once it reads a page; never a newer TXID's, never torn.
	for round := 0; !strings.Contains(e.Logs.String(), "it expired"); round++ {
		if round == 40 {
			t.Fatalf("the attached replica in exclusive mode never expired; log:\n%s", e.Logs)
		}
		e.Ref.Insert(10)
		e.Commit()
		e.waitCaughtUp(follower)
		n, err := count()
		if err != nil && !strings.Contains(err.Error(), "disk I/O error") {
			t.Fatalf("the pinned connection fails with %v; want an I/O error", err)
		}
		if err == nil && n != before {
			t.Fatalf("the pinned connection went from %d to %d rows within one transaction", before, n)
		}
	}
	// The follower is not held back by it any longer: it folds.
	e.Ref.Insert(1)
	e.Commit()
	e.waitCaughtUp(follower)
}
