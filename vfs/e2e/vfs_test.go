package e2e

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
	"github.com/walrust/walrust/vfs"
	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/ltxtest"
	"github.com/walrust/walrust/vfs/testkit/testtool"
)

func TestMain(m *testing.M) {
	if err := vfs.Register(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// env is one test's primary database, file store and replica path.
type env struct {
	t        testing.TB
	dir      string
	storeDir string
	primary  *sql.DB
	pub      *ltxtest.Primary
	primPath string
	replica  string
}

func newEnv(t testing.TB, pageSize int) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, storeDir: filepath.Join(dir, "store"), primPath: filepath.Join(dir, "primary.db"), replica: filepath.Join(dir, "replica.db")}
	if err := os.MkdirAll(e.storeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenFile(e.storeDir)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite3", e.primPath+"?_journal_mode=DELETE")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	e.primary = db
	e.exec(fmt.Sprintf("PRAGMA page_size=%d", pageSize))
	e.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
	e.pub = &ltxtest.Primary{Store: st, PageSize: uint32(pageSize)}
	e.pub.Advance(ltxtest.ReadImage(t, e.primPath), 1)
	e.pub.Snapshot(t)
	return e
}

func (e *env) exec(q string, args ...any) {
	e.t.Helper()
	if _, err := e.primary.Exec(q, args...); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
}

// commit publishes the primary's current file as the next TXID.
func (e *env) commit() {
	e.t.Helper()
	e.pub.Commit(e.t, ltxtest.ReadImage(e.t, e.primPath))
}

func (e *env) uri(extra string) string {
	return fmt.Sprintf("file:%s?vfs=walrust&source=file://%s&interval=20ms%s", e.replica, e.storeDir, extra)
}

func (e *env) openReplica(extra string) *sql.DB {
	e.t.Helper()
	db, err := sql.Open("sqlite3", e.uri(extra))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { db.Close() })
	return db
}

func waitFor(t testing.TB, what string, cond func() (bool, error)) {
	t.Helper()
	testtool.Eventually(t, what, 10*time.Second, func() error {
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
	e := newEnv(t, 4096)
	db := e.openReplica("")
	if n, err := count(db); err != nil || n != 0 {
		t.Fatalf("count = %d, %v; want 0", n, err)
	}
	for i := 1; i <= 20; i++ {
		e.exec("INSERT INTO t (v) VALUES (?)", fmt.Sprint("row ", i))
		e.commit()
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
		if _, err := os.Stat(e.replica + suffix); err == nil {
			t.Errorf("%s exists", e.replica+suffix)
		}
	}
}
