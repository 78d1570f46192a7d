package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/walrust/walrust/vfs/internal/testhooks"
	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// directSetup follows a primary of 200 rows into a replica opened with the
// URI parameters extra, and waits until its head is folded: a new
// connection (an empty page cache) then reads its pages without Go.
func directSetup(t *testing.T, extra string) (*world, *sql.DB) {
	t.Helper()
	e := newWorld(t, 4096, false)
	for i := range 200 {
		e.Ref.Exec("INSERT INTO t (v) VALUES (?)", fmt.Sprintf("%04d %0500d", i, i))
	}
	e.Commit()
	db := e.openReplica(extra)
	db.SetMaxOpenConns(2)
	waitFor(t, "the replica to catch up", func() (bool, error) {
		var n int
		err := db.QueryRow("SELECT count(*) FROM t").Scan(&n)
		return n == 200, err
	})
	// The follower folds after each poll.
	waitFor(t, "direct reads", func() (bool, error) {
		cold := e.openReplica("")
		defer cold.Close()
		before := testhooks.DirectReads()
		var n int
		if err := cold.QueryRow("SELECT count(*) FROM t WHERE length(v) > 0").Scan(&n); err != nil {
			return false, err
		}
		return testhooks.DirectReads()-before >= 20 && n == 200, nil
	})
	return e, db
}

// tinyCache is a page cache too small for the tables here: every scan
// reads the file.
const tinyCache = "PRAGMA cache_size = 2"

// dbConn is one connection of db, closed at cleanup, with pragmas run on
// it first.
func dbConn(t *testing.T, db *sql.DB, pragmas ...string) *sql.Conn {
	t.Helper()
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for _, p := range pragmas {
		if _, err := c.ExecContext(context.Background(), p); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	return c
}

// beginTx begins a transaction on c, rolled back at cleanup if it is still
// open then.
func beginTx(t *testing.T, c *sql.Conn) *sql.Tx {
	t.Helper()
	tx, err := c.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback() })
	return tx
}

// TestDirectReads: a transaction whose version is all in the base file has
// its page reads served by the C layer (layer.c) straight from the file,
// and sees the same rows as through Go; one pinned at a version that is not
// folded yet (a long reader holds the fold back) reads that version's pages
// through Go and the others from the file, and both see their own TXID.
func TestDirectReads(t *testing.T) {
	e, db := directSetup(t, "")

	// A long reader pins TXID 2; newer versions stay unfolded behind it.
	tx := beginTx(t, dbConn(t, db))
	var pinned int
	if err := tx.QueryRow("SELECT count(*) FROM t").Scan(&pinned); err != nil {
		t.Fatal(err)
	}
	e.Ref.Exec("UPDATE t SET v = 'changed ' || v WHERE id % 2 = 0")
	e.Ref.Exec("INSERT INTO t (v) VALUES ('new')")
	e.Commit()
	// A new connection reads the new version: its changed pages through
	// Go, the others still straight from the file.
	waitFor(t, "the new rows, partly through Go", func() (bool, error) {
		cold := e.openReplica("")
		defer cold.Close()
		before := testhooks.DirectReads()
		var changed, n int
		err := cold.QueryRow("SELECT count(*), sum(v LIKE 'changed %') FROM t").Scan(&n, &changed)
		return n == 201 && changed == 100 && testhooks.DirectReads() > before, err
	})
	var changed, n int
	if err := tx.QueryRow("SELECT count(*), coalesce(sum(v LIKE 'changed %'), 0) FROM t").Scan(&n, &changed); err != nil {
		t.Fatal(err)
	}
	if n != pinned || changed != 0 {
		t.Fatalf("the long reader sees %d rows, %d changed; want its own %d, none changed", n, changed, pinned)
	}
}

// pythonDirect reads a replica through the extension and prints the row
// count and how many reads the C layer served without Go (the library's
// walrustDirectReads, through ctypes: the same loaded copy).
const pythonDirect = `
import ctypes, sqlite3, sys
ext, uri = sys.argv[1], sys.argv[2]
loader = sqlite3.connect(":memory:")
loader.enable_load_extension(True)
loader.load_extension(ext)
lib = ctypes.CDLL(ext + ".so")
lib.walrustDirectReads.restype = ctypes.c_uint64
db = sqlite3.connect(uri, uri=True)
before = lib.walrustDirectReads()
n = db.execute("SELECT count(*) FROM t WHERE length(v) > 0").fetchone()[0]
print(n, lib.walrustDirectReads() - before)
`

// TestDirectReadsExtension: the extension installs the C layer through
// SQLite's API table (cshim/walrust.c), and its reads go direct too.
func TestDirectReadsExtension(t *testing.T) {
	ext := testtool.Extension(t)
	python := testtool.Program(t, "/usr/bin/python3")
	e := newWorld(t, 4096, false)
	for i := range 200 {
		e.Ref.Exec("INSERT INTO t (v) VALUES (?)", fmt.Sprintf("%0500d", i))
	}
	e.Commit()
	out, err := exec.Command(python, "-c", pythonDirect, ext, e.followURI("")).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	var n, direct int
	if _, err := fmt.Sscan(string(out), &n, &direct); err != nil {
		t.Fatalf("python printed %q: %v", out, err)
	}
	if n != 200 || direct < 20 {
		t.Fatalf("python read %d rows with %d direct reads; want 200 rows, most pages direct", n, direct)
	}
}

// TestLongReaderExpires: a read transaction that keeps more of the log
// than max_held allows expires: every read it makes from then on fails
// (the C layer's direct reads of the base file are revoked before the
// fold writes it), it never sees a page of a newer TXID, and once it ends
// the connection reads the newest state.
func TestLongReaderExpires(t *testing.T) {
	e, db := directSetup(t, "&max_held=64KiB")

	ctx := context.Background()
	long := dbConn(t, db, tinyCache)
	tx := beginTx(t, long)
	scan := func() (string, error) {
		var n, sum int
		err := tx.QueryRow("SELECT count(*), sum(length(v)) FROM t WHERE v NOT LIKE 'changed%'").Scan(&n, &sum)
		return fmt.Sprint(n, " ", sum), err
	}
	want, err := scan()
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; ; round++ {
		if round == 30 {
			t.Fatalf("the long reader never expired; log:\n%s", e.Logs)
		}
		e.Ref.Exec("UPDATE t SET v = 'changed ' || v WHERE id % 5 = ?", round%5)
		e.Commit()
		time.Sleep(60 * time.Millisecond) // a few polls
		got, err := scan()
		if err != nil {
			if !strings.Contains(err.Error(), "disk I/O error") {
				t.Fatalf("the expired reader fails with %v; want an I/O error", err)
			}
			break
		}
		if got != want {
			t.Fatalf("the long reader sees %s; want its own %s", got, want)
		}
	}
	// The follower logs the expiry after it revoked the version, which
	// the reader can see first.
	waitFor(t, "the expiry to be logged", func() (bool, error) {
		return strings.Contains(e.Logs.String(), "it expired") && strings.Contains(e.Logs.String(), "max_held"), nil
	})
	tx.Rollback()
	waitFor(t, "the newest rows once the reader ended", func() (bool, error) {
		var changed int
		err := long.QueryRowContext(ctx, "SELECT count(*) FROM t WHERE v LIKE 'changed%'").Scan(&changed)
		return changed > 0, err
	})
}

// TestTransactionHeaderDirect: on a replica whose head is folded, each read
// transaction begins at the replica's gate, and its look at page 1's
// header (SQLite's change counter check, at every transaction even when
// its page cache holds every page) is served by the C layer from the file,
// as are its xFileSize and hot-journal checks: a warm autocommit query
// never enters Go.
func TestTransactionHeaderDirect(t *testing.T) {
	_, db := directSetup(t, "")
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var v string
	query := func() {
		if err := conn.QueryRowContext(context.Background(), "SELECT v FROM t WHERE id = 7").Scan(&v); err != nil {
			t.Fatal(err)
		}
	}
	query() // the pages are in SQLite's cache from here on
	before, gatedBefore := testhooks.DirectReads(), testhooks.GatedTransactions()
	const n = 100
	for range n {
		query()
	}
	if got := testhooks.DirectReads() - before; got < n {
		t.Fatalf("%d reads without Go in %d warm transactions; want at least one each (page 1's header)", got, n)
	}
	if got := testhooks.GatedTransactions() - gatedBefore; got < n {
		t.Fatalf("%d of %d warm transactions began at the gate; want all", got, n)
	}
	if !strings.HasPrefix(v, "0006 ") {
		t.Fatalf("row 7 reads %.16q", v)
	}
}

// TestGatedTransaction: a transaction begun at the gate keeps its TXID
// while newer ones are applied (the fold waits for it, so the pages it
// reads from the file stay its own), and when it calls in — PRAGMA
// walrust_txid, here — Go adopts it at that TXID; once it ends, the
// connection sees the new rows.
func TestGatedTransaction(t *testing.T) {
	e, db := directSetup(t, "")
	ctx := context.Background()
	conn := dbConn(t, db, tinyCache)
	scan := func(q interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}) (n, changed int) {
		t.Helper()
		if err := q.QueryRowContext(ctx, "SELECT count(*), coalesce(sum(v LIKE 'changed %'), 0) FROM t").Scan(&n, &changed); err != nil {
			t.Fatal(err)
		}
		return n, changed
	}
	var txid int
	if err := conn.QueryRowContext(ctx, "PRAGMA walrust_txid").Scan(&txid); err != nil {
		t.Fatal(err)
	}
	gated := testhooks.GatedTransactions()
	tx := beginTx(t, conn)
	if n, _ := scan(tx); n != 200 {
		t.Fatalf("the gated transaction sees %d rows; want 200", n)
	}
	if testhooks.GatedTransactions() == gated {
		t.Fatal("the transaction did not begin at the gate")
	}
	e.Ref.Exec("UPDATE t SET v = 'changed ' || v WHERE id % 2 = 0")
	e.Ref.Exec("INSERT INTO t (v) VALUES ('new')")
	e.Commit()
	waitFor(t, "another connection to see the new rows", func() (bool, error) {
		cold := e.openReplica("")
		defer cold.Close()
		n, changed := scan(cold)
		return n == 201 && changed == 100, nil
	})
	time.Sleep(50 * time.Millisecond) // a few polls, each of which folds when it can
	if n, changed := scan(tx); n != 200 || changed != 0 {
		t.Fatalf("the gated transaction sees %d rows, %d changed; want its own 200, none changed", n, changed)
	}
	var inTx int
	if err := tx.QueryRowContext(ctx, "PRAGMA walrust_txid").Scan(&inTx); err != nil {
		t.Fatal(err)
	}
	if inTx != txid {
		t.Fatalf("PRAGMA walrust_txid in the transaction says %d; want its own %d", inTx, txid)
	}
	if n, changed := scan(tx); n != 200 || changed != 0 {
		t.Fatalf("adopted, the transaction sees %d rows, %d changed; want its own 200, none changed", n, changed)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if n, changed := scan(conn); n != 201 || changed != 100 {
		t.Fatalf("after the transaction the connection sees %d rows, %d changed; want 201, 100", n, changed)
	}
}

// TestGateBehindLongReader: a long transaction that began at the gate
// keeps its slot, and the versions applied after it stay unfolded; the
// transactions after them begin at the gate all the same (another slot,
// the newest version, page 1 from the slot's buffer, the changed pages
// through Go) and read the new rows, while the long one reads its own.
func TestGateBehindLongReader(t *testing.T) {
	e, db := directSetup(t, "")
	ctx := context.Background()
	gated := testhooks.GatedTransactions()
	tx := beginTx(t, dbConn(t, db))
	var n int
	if err := tx.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 200 {
		t.Fatalf("the long transaction: %d rows, %v", n, err)
	}
	if testhooks.GatedTransactions() == gated {
		t.Fatal("the long transaction did not begin at the gate")
	}
	for i := range 20 {
		e.Ref.Exec("UPDATE t SET v = 'changed ' || v WHERE id = ?", 1+i*10)
		e.Commit()
	}
	conn := dbConn(t, db)
	waitFor(t, "the new rows", func() (bool, error) {
		var c int
		err := conn.QueryRowContext(ctx, "SELECT count(*) FROM t WHERE v LIKE 'changed%'").Scan(&c)
		return c == 20, err
	})
	gated = testhooks.GatedTransactions()
	const queries = 100
	for i := range queries {
		var v string
		id := 1 + i%20*10
		if err := conn.QueryRowContext(ctx, "SELECT v FROM t WHERE id = ?", id).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(v, "changed ") {
			t.Fatalf("row %d reads %.20q; want it changed", id, v)
		}
	}
	if got := testhooks.GatedTransactions() - gated; got < queries-1 {
		t.Fatalf("%d of %d transactions behind the long one began at the gate", got, queries)
	}
	var changed int
	if err := tx.QueryRow("SELECT count(*) FROM t WHERE v LIKE 'changed%'").Scan(&changed); err != nil || changed != 0 {
		t.Fatalf("the long transaction sees %d changed rows (%v); want none", changed, err)
	}
}
