package publish

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/walrust/walrust/vfs/store"
)

// publisherFor opens a publisher of p to st with its work directory in a
// temporary directory.
func publisherFor(t *testing.T, p *primary, st store.Store, workDir string) *Publisher {
	t.Helper()
	if workDir == "" {
		workDir = t.TempDir()
	}
	pub, err := New(p.path, st, Options{WorkDir: workDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	return pub
}

func publishOnce(t *testing.T, pub *Publisher) Result {
	t.Helper()
	res, err := pub.PublishOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// expect checks what one publish produced.
func expect(t *testing.T, res Result, changed, snapshot bool, txid uint64) {
	t.Helper()
	if res.Changed != changed || res.Snapshot != snapshot || uint64(res.TXID) != txid {
		t.Fatalf("got changed=%v snapshot=%v TXID %d (%s, %q), want changed=%v snapshot=%v TXID %d",
			res.Changed, res.Snapshot, res.TXID, res.File, res.Reason, changed, snapshot, txid)
	}
	if !changed {
		return
	}
	want := store.FileInfo{Level: 0, MinTXID: res.TXID, MaxTXID: res.TXID}
	if snapshot {
		want = store.FileInfo{Level: store.SnapshotLevel, MinTXID: 1, MaxTXID: res.TXID}
	}
	if res.File.Level != want.Level || res.File.MinTXID != want.MinTXID || res.File.MaxTXID != want.MaxTXID {
		t.Fatalf("published %s, want %s", res.File, want)
	}
}

func insertRows(t *testing.T, p *primary, from, n, size int) {
	t.Helper()
	p.tx(func(tx *sql.Tx) error {
		for i := from; i < from+n; i++ {
			if _, err := tx.Exec("INSERT INTO t (id, name, body) VALUES (?, ?, ?)", i, fmt.Sprintf("row %d", i), body(i, size)); err != nil {
				return err
			}
		}
		return nil
	})
}

// body is size bytes of text that differ from row to row.
func body(i, size int) string {
	unit := fmt.Sprintf("%d,", i)
	return strings.Repeat(unit, size/len(unit)+1)[:size]
}

// TestPublishScenario takes a database through the changes a primary sees
// and after every publish rebuilds it from the store.
func TestPublishScenario(t *testing.T) {
	for _, tc := range []struct {
		mode     string
		pageSize int
		newSize  int
	}{
		{"delete", 4096, 1024},
		{"wal", 4096, 8192},
		{"delete", 512, 65536},
		{"wal", 65536, 512},
	} {
		t.Run(fmt.Sprintf("%s-%d", tc.mode, tc.pageSize), func(t *testing.T) {
			testScenario(t, tc.mode, tc.pageSize, tc.newSize)
		})
	}
}

func testScenario(t *testing.T, mode string, pageSize, newSize int) {
	p := newPrimary(t, mode, pageSize)
	st := newFileStore(t)
	work := t.TempDir()
	pub := publisherFor(t, p, st, work)

	p.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, body TEXT)")
	insertRows(t, p, 0, 200, 100)
	res := publishOnce(t, pub)
	expect(t, res, true, true, 1)
	if res.PageSize != uint32(pageSize) || res.Reason != "no local position" {
		t.Fatalf("first publish: %+v", res)
	}
	verifyStore(t, p, st, res)

	expect(t, publishOnce(t, pub), false, false, 1)

	step := func(name string, change func()) Result {
		t.Helper()
		change()
		res := publishOnce(t, pub)
		expect(t, res, true, false, uint64(res.TXID))
		t.Logf("%s: TXID %d, %d pages, %d bytes, commit %d", name, res.TXID, res.Pages, res.File.Size, res.Commit)
		verifyStore(t, p, st, res)
		expect(t, publishOnce(t, pub), false, false, uint64(res.TXID))
		return res
	}
	res = step("insert", func() { insertRows(t, p, 200, 50, 100) })
	if res.TXID != 2 || res.Pages == 0 || res.Pages >= int(res.Commit) {
		t.Fatalf("insert: want a delta with some of the %d pages, got %d pages at TXID %d", res.Commit, res.Pages, res.TXID)
	}
	step("update", func() { p.exec("UPDATE t SET name = 'updated' WHERE id % 7 = 0") })
	step("delete", func() { p.exec("DELETE FROM t WHERE id % 3 = 0") })
	big := step("overflow rows", func() { insertRows(t, p, 1000, 5, 3*pageSize+100) })
	step("schema change", func() { p.exec("CREATE INDEX t_name ON t (name)") })
	shrunk := step("vacuum", func() {
		p.exec("DELETE FROM t WHERE id >= 1000 OR id % 2 = 0")
		p.exec("VACUUM")
	})
	if shrunk.Commit >= big.Commit {
		t.Fatalf("VACUUM did not shrink the database: %d pages, before %d", shrunk.Commit, big.Commit)
	}

	// A page size change takes a VACUUM, outside WAL mode, which takes a
	// moment without the publisher: its read transaction keeps SQLite from
	// leaving WAL mode.
	if mode == "wal" {
		pub.Close()
		p.exec("PRAGMA journal_mode=delete")
	}
	p.exec(fmt.Sprintf("PRAGMA page_size=%d", newSize))
	p.exec("VACUUM")
	if mode == "wal" {
		p.exec("PRAGMA journal_mode=wal")
		pub = publisherFor(t, p, st, work)
	}
	res = publishOnce(t, pub)
	expect(t, res, true, true, uint64(shrunk.TXID)+1)
	if res.PageSize != uint32(newSize) || !strings.Contains(res.Reason, "page size changed") {
		t.Fatalf("page size change: %+v", res)
	}
	verifyStore(t, p, st, res)

	step("insert after page size change", func() { insertRows(t, p, 2000, 100, 300) })
}
