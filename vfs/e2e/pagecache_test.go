package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/walrust/walrust/vfs/internal/testhooks"
)

// readLog records the reads SQLite makes of one database file.
type readLog struct {
	mu    sync.Mutex
	path  string
	reads []string // "offset+length"
}

func (l *readLog) hook(path string, off int64, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if path == l.path {
		l.reads = append(l.reads, fmt.Sprintf("%d+%d", off, n))
	}
}

// take returns the reads so far and forgets them.
func (l *readLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.reads
	l.reads = nil
	return r
}

// TestPageCacheKept: SQLite keeps its page cache across read transactions
// while the replica does not change — each transaction reads only the 16
// header bytes at offset 24 (the change counter), never a page — and drops
// it exactly when a new TXID arrives: the next transaction reads pages again
// and sees the new row, and the one after that is back to the header read.
func TestPageCacheKept(t *testing.T) {
	e := newWorld(t, 4096, false)
	for i := 0; i < 300; i++ {
		e.Ref.Exec("INSERT INTO t (id, v) VALUES (?, ?)", i, strings.Repeat(fmt.Sprint(i%10), 500))
	}
	e.Commit()
	log := &readLog{path: e.Path}
	restore := testhooks.SetReadHook(log.hook)
	defer restore()

	db := e.openReplica("")
	ctx := context.Background()
	conn, err := db.Conn(ctx) // one connection: one page cache
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	point := func(id int) string {
		t.Helper()
		var v string
		if err := conn.QueryRowContext(ctx, "SELECT v FROM t WHERE id = ?", id).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	// The first transaction reads the pages (a scan reads them all).
	var n int
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM t WHERE v LIKE '%x%'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if reads := log.take(); len(reads) < 10 {
		t.Fatalf("the first transaction made %d reads (%v), want the whole table", len(reads), reads)
	}

	// Unchanged replica: each point query is one transaction that reads the
	// change counter and nothing else. The follower keeps polling (and may
	// fold) meanwhile.
	const queries = 200
	for i := 0; i < queries; i++ {
		if v := point(i % 300); v[0] != byte('0'+i%10) {
			t.Fatalf("row %d = %.10q…", i%300, v)
		}
	}
	reads := log.take()
	for _, r := range reads {
		if r != "24+16" {
			t.Fatalf("unchanged replica: a transaction read %s (reads: %v); want only the change counter (24+16)", r, reads)
		}
	}
	if len(reads) != queries {
		t.Fatalf("unchanged replica: %d header reads for %d transactions", len(reads), queries)
	}

	// One new TXID: wait for it on another connection (another page cache).
	e.Ref.Exec("UPDATE t SET v = 'changed' WHERE id = 7")
	e.Commit()
	want := int64(e.Pub.TXID)
	waitFor(t, "the new TXID", func() (bool, error) {
		var txid int64
		err := db.QueryRow("PRAGMA walrust_txid").Scan(&txid)
		return txid == want, err
	})
	log.take()
	if v := point(7); v != "changed" {
		t.Fatalf("after the change, row 7 = %.10q…; want the new value", v)
	}
	reads = log.take()
	pages := 0
	for _, r := range reads {
		if r != "24+16" {
			pages++
		}
	}
	if pages == 0 {
		t.Fatalf("the transaction after a change read no page (reads: %v): the page cache was not dropped", reads)
	}
	// And the cache holds again.
	for i := 0; i < 20; i++ {
		point(7)
	}
	for _, r := range log.take() {
		if r != "24+16" {
			t.Fatalf("after the change was read, a transaction read %s; want only the change counter", r)
		}
	}
	t.Logf("%d transactions on an unchanged replica: %d reads, all of the change counter; the transaction after a change read %d pages", queries, queries, pages)
}
