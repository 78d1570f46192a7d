package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/walrust/walrust/vfs/publish"
	"github.com/walrust/walrust/vfs/store"
)

// TestIdleReplicaSeesSnapshotOnlyPublish: when walrust's publisher starts
// over with a snapshot (here: a page size change), an idle replica — which
// lists only level 0 after its TXID — still moves to it, because the
// publisher announces the snapshot with a level-0 file at the same TXID.
func TestIdleReplicaSeesSnapshotOnlyPublish(t *testing.T) {
	dir := t.TempDir()
	storeDir := filepath.Join(dir, "store")
	if err := os.Mkdir(storeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenFile(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	primPath := filepath.Join(dir, "primary.db")
	prim, err := sql.Open("sqlite3", primPath+"?_journal_mode=DELETE")
	if err != nil {
		t.Fatal(err)
	}
	defer prim.Close()
	prim.SetMaxOpenConns(1)
	mustExec := func(q string) {
		t.Helper()
		if _, err := prim.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	mustExec("PRAGMA page_size=4096")
	mustExec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
	mustExec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 200) INSERT INTO t (v) SELECT printf('row %d', i) FROM n")
	pub, err := publish.New(primPath, st, publish.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ctx := context.Background()
	if _, err := pub.PublishOnce(ctx); err != nil {
		t.Fatal(err)
	}

	replica, err := sql.Open("sqlite3", fmt.Sprintf("file:%s?vfs=walrust&source=file://%s&interval=20ms", filepath.Join(dir, "replica.db"), storeDir))
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close()
	replica.SetMaxOpenConns(1)
	pageSize := func() (n int, err error) {
		// PRAGMA page_size answers from the connection's memory; a read
		// makes SQLite look at the file's header first.
		if _, err = replica.Exec("SELECT count(*) FROM sqlite_schema"); err != nil {
			return 0, err
		}
		err = replica.QueryRow("PRAGMA page_size").Scan(&n)
		return n, err
	}
	if n, err := pageSize(); err != nil || n != 4096 {
		t.Fatalf("page_size = %d, %v", n, err)
	}

	mustExec("PRAGMA page_size=8192")
	mustExec("VACUUM")
	mustExec("INSERT INTO t (v) VALUES ('after')")
	res, err := pub.PublishOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Snapshot {
		t.Fatalf("a page size change published %+v, not a snapshot", res)
	}
	waitFor(t, "the replica to move to 8192-byte pages", func() (bool, error) {
		n, err := pageSize()
		return n == 8192, err
	})
	var rows int
	if err := replica.QueryRow("SELECT count(*) FROM t").Scan(&rows); err != nil || rows != 201 {
		t.Fatalf("rows = %d, %v; want 201", rows, err)
	}
}
