package e2e

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"testing"

	_ "github.com/mattn/go-sqlite3"

	"github.com/walrust/walrust/vfs"
)

func TestMain(m *testing.M) {
	if err := vfs.Register(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if os.Getenv(linkedChildEnv) != "" {
		os.Exit(defaultVFSLinkedChild()) // TestDefaultVFSLinked
	}
	os.Exit(m.Run())
}

// waitFor is eventually for a condition that is met or not.
func waitFor(t testing.TB, what string, cond func() (bool, error)) {
	t.Helper()
	eventually(t, what, func() error {
		if ok, err := cond(); err != nil {
			return err
		} else if !ok {
			return errors.New("not yet")
		}
		return nil
	})
}

func count(db *sql.DB) (n int, err error) {
	err = db.QueryRow("SELECT count(*) FROM t").Scan(&n)
	return n, err
}

func TestFollowNewRows(t *testing.T) {
	e := newWorld(t, 4096, false)
	db := e.openReplica("")
	if n, err := count(db); err != nil || n != 0 {
		t.Fatalf("count = %d, %v; want 0", n, err)
	}
	for i := 1; i <= 20; i++ {
		e.Ref.Exec("INSERT INTO t (v) VALUES (?)", fmt.Sprint("row ", i))
		e.Commit()
		waitFor(t, fmt.Sprintf("%d rows", i), func() (bool, error) {
			n, err := count(db)
			return n == i, err
		})
	}
	var txid int64
	if err := db.QueryRow("PRAGMA walrust_txid").Scan(&txid); err != nil || txid != 21 {
		t.Fatalf("walrust_txid = %d, %v; want 21", txid, err)
	}
	if _, err := db.Exec("INSERT INTO t (v) VALUES ('x')"); err == nil {
		t.Fatal("write succeeded on a replica")
	}
	for _, suffix := range []string{"-journal", "-wal", "-shm"} {
		if _, err := os.Stat(e.Path + suffix); err == nil {
			t.Errorf("%s exists", e.Path+suffix)
		}
	}
}
