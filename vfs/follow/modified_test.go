package follow

import (
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	"github.com/walrust/walrust/vfs/replica"
)

// TestModifiedWhileFollowing: a plain SQLite client writes to the replica
// while walrust follows it. The next fold refuses to write over the
// change (ErrModified), the follower bootstraps again from the newest
// snapshot, and that fold keeps a copy of the changed file before it
// rewrites it: the replica is the primary's again, and nothing is lost.
func TestModifiedWhileFollowing(t *testing.T) {
	w := newWorld(t, 4096, true)
	w.InsertRows(20, 300)
	w.Advance(w.Ref.Image())
	r, f := w.bootstrapped()
	w.InsertRows(5, 300)
	w.Commit()
	mustStep(t, f)
	w.checkBase(w.Pub.TXID, "before")

	other, err := sql.Open("sqlite3", "file:"+w.Path+"?_journal_mode=DELETE")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Exec("INSERT INTO t (k, v) VALUES ('never on the primary', x'00')"); err != nil {
		t.Fatal(err)
	}
	other.Close()

	w.InsertRows(5, 300)
	txid := w.Commit()
	if err := step(t, f); !errors.Is(err, replica.ErrModified) {
		t.Fatalf("step after the file was changed: %v; want ErrModified", err)
	}
	mustStep(t, f) // bootstraps again
	w.checkHead(r, txid, "bootstrapped again")
	w.checkBase(txid, "bootstrapped again")
	aside, _ := filepath.Glob(w.Path + ".modified-*")
	if len(aside) != 1 {
		t.Fatalf("copies kept: %v; log:\n%s", aside, w.Logs)
	}
	kept, err := sql.Open("sqlite3", "file:"+aside[0]+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	var n int
	if err := kept.QueryRow("SELECT count(*) FROM t WHERE k = 'never on the primary'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("the copy kept lost the change: %d, %v", n, err)
	}
	if !logContains(w.Logs, "kept a copy") {
		t.Fatalf("the copy is not logged:\n%s", w.Logs)
	}
}
