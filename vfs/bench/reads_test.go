package bench

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

const (
	lookupQuery = "SELECT v FROM t WHERE id = ?"
	rangeQuery  = "SELECT count(*), sum(length(v)) FROM t WHERE id BETWEEN ? AND ?"
	scanQuery   = "SELECT count(*), sum(length(v)) FROM t"
)

// readSide is one way of reading the replica's base file: through walrust,
// or through SQLite's default VFS.
type readSide struct {
	name string
	db   *sql.DB // cold samples open a new connection from here each time
	conn *sql.Conn
	stmt readStmts // prepared on conn
}

type readStmts struct{ lookup, rng *sql.Stmt }

func prepare(ctx context.Context, t testing.TB, c *sql.Conn) readStmts {
	t.Helper()
	l, err := c.PrepareContext(ctx, lookupQuery)
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.PrepareContext(ctx, rangeQuery)
	if err != nil {
		t.Fatal(err)
	}
	return readStmts{l, r}
}

func (s readStmts) close() {
	s.lookup.Close()
	s.rng.Close()
}

// run times one sample: on the held connection (warm: SQLite's page cache
// survives from sample to sample), or on a new connection that is opened,
// used and closed within the timing (cold).
func (s *readSide) run(t testing.TB, warm bool, fn func(c *sql.Conn, st readStmts) error) time.Duration {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	if warm {
		if err := fn(s.conn, s.stmt); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		return time.Since(start)
	}
	c, err := s.db.Conn(ctx)
	if err != nil {
		t.Fatalf("%s: open: %v", s.name, err)
	}
	st := prepare(ctx, t, c)
	err = fn(c, st)
	st.close()
	c.Close()
	if err != nil {
		t.Fatalf("%s: %v", s.name, err)
	}
	return time.Since(start)
}

func openDB(t testing.TB, uri string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", uri)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// reads compares walrust with SQLite's default VFS reading two copies of
// the same content: a WAL-mode copy (what `litestream restore` gives a user,
// and what the primary is: a WAL reader starts a transaction from shared
// memory) and a rollback-mode copy (what walrust serves: page 1 says
// rollback journal). walrust reads the replica it bootstrapped from a file
// store; the copies are of the primary the snapshot was made from. All go
// through mattn/go-sqlite3 with its default page cache (cache_size -2000,
// 2 MB), far smaller than the database; the OS page cache holds every file.
func (b *bench) reads(d *data) {
	t := b.t
	ctx := context.Background()
	big := d.db(b.cfg.readMB)
	dir := filepath.Join(b.dir, "reads")
	storeRoot := filepath.Join(dir, "store")
	if err := link(big.snap, filepath.Join(storeRoot, "ltx", "9", snapName)); err != nil {
		t.Fatal(err)
	}
	replicaPath := filepath.Join(dir, "replica.db")
	wURI := fmt.Sprintf("file:%s?vfs=walrust&source=file://%s&interval=1s&timeout=10m", replicaPath, storeRoot)
	walPath, rollPath := copies(t, big.path, dir)

	start := time.Now()
	w := &readSide{name: "walrust", db: openDB(t, wURI)}
	w.db.SetMaxIdleConns(0)
	var err error
	if w.conn, err = w.db.Conn(ctx); err != nil { // bootstraps; held until the end
		t.Fatal(err)
	}
	defer w.conn.Close()
	var maxID int64
	if err := w.conn.QueryRowContext(ctx, "SELECT max(id) FROM t").Scan(&maxID); err != nil || maxID != big.rows {
		t.Fatalf("walrust: max(id) = %d, %v; want %d", maxID, err, big.rows)
	}
	b.logf("reads: replica of the %d MiB database bootstrapped from a file store in %s", big.mb, time.Since(start).Round(time.Millisecond))
	var txid string
	if err := w.conn.QueryRowContext(ctx, "PRAGMA walrust_txid").Scan(&txid); err != nil || txid != "1" {
		t.Fatalf("walrust_txid = %q, %v", txid, err)
	}

	// The WAL-mode copy is opened read-write, as an application opens it:
	// SQLite makes its -wal and -shm files at the first read (a read-only
	// open of a WAL database without them fails). The cold samples' new
	// connections find them in place, since the warm one stays open.
	wal := &readSide{name: "default VFS, WAL-mode copy", db: openDB(t, "file:"+walPath)}
	roll := &readSide{name: "default VFS, rollback-mode copy", db: openDB(t, "file:"+rollPath+"?mode=ro")}
	sides := []*readSide{w, wal, roll}
	for _, s := range sides[1:] {
		s.db.SetMaxIdleConns(0)
		if s.conn, err = s.db.Conn(ctx); err != nil {
			t.Fatal(err)
		}
		defer s.conn.Close()
	}
	var jm string
	if err := wal.conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&jm); err != nil || jm != "wal" {
		t.Fatalf("WAL-mode copy: journal_mode %q, %v", jm, err)
	}
	for _, s := range sides {
		s.stmt = prepare(ctx, t, s.conn)
		defer s.stmt.close()
	}

	// All must read the same data; this also warms the OS page cache.
	for _, s := range sides {
		var n, l int64
		if err := s.conn.QueryRowContext(ctx, scanQuery).Scan(&n, &l); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if n != big.rows {
			t.Fatalf("%s reads %d rows (%d bytes); want %d rows", s.name, n, l, big.rows)
		}
	}

	rows := big.rows
	lookups := func(n int) func(i int) func(c *sql.Conn, st readStmts) error {
		return func(i int) func(c *sql.Conn, st readStmts) error {
			return func(c *sql.Conn, st readStmts) error {
				rng := rand.New(rand.NewPCG(1, uint64(i))) // the same keys for both sides
				var v []byte
				for range n {
					if err := st.lookup.QueryRow(1 + rng.Int64N(rows)).Scan(&v); err != nil {
						return err
					}
				}
				return nil
			}
		}
	}
	ranges := func(n int) func(i int) func(c *sql.Conn, st readStmts) error {
		return func(i int) func(c *sql.Conn, st readStmts) error {
			return func(c *sql.Conn, st readStmts) error {
				rng := rand.New(rand.NewPCG(2, uint64(i)))
				var cnt, sum int64
				for range n {
					lo := 1 + rng.Int64N(max(1, rows-b.cfg.rangeRows))
					if err := st.rng.QueryRow(lo, lo+b.cfg.rangeRows-1).Scan(&cnt, &sum); err != nil {
						return err
					}
					if cnt != min(b.cfg.rangeRows, rows-lo+1) {
						return fmt.Errorf("range at %d: %d rows", lo, cnt)
					}
				}
				return nil
			}
		}
	}
	scan := func(i int) func(c *sql.Conn, st readStmts) error {
		return func(c *sql.Conn, st readStmts) error {
			var n, l int64
			if err := c.QueryRowContext(ctx, scanQuery).Scan(&n, &l); err != nil {
				return err
			}
			if n != rows {
				return fmt.Errorf("full scan: %d rows, want %d", n, rows)
			}
			return nil
		}
	}

	cfg := b.cfg
	cases := []readCase{
		{fmt.Sprintf("point lookups by key, warm (%d per sample)", cfg.lookupsWarm), true, cfg.readPairs, lookups(cfg.lookupsWarm),
			peerCase{Kind: "lookup", N: cfg.lookupsWarm, Warm: true, Pairs: cfg.peerPairs}},
		{fmt.Sprintf("point lookups by key, cold (new connection + %d lookups)", cfg.lookupsCold), false, cfg.readPairs, lookups(cfg.lookupsCold),
			peerCase{Kind: "lookup", N: cfg.lookupsCold, Pairs: cfg.peerPairs}},
		{fmt.Sprintf("range scans of %d rows, warm (%d per sample)", cfg.rangeRows, cfg.rangesWarm), true, cfg.readPairs, ranges(cfg.rangesWarm),
			peerCase{Kind: "range", N: cfg.rangesWarm, Warm: true, Pairs: cfg.peerPairs}},
		{fmt.Sprintf("range scans of %d rows, cold (new connection + %d scans)", cfg.rangeRows, cfg.rangesCold), false, cfg.readPairs, ranges(cfg.rangesCold),
			peerCase{Kind: "range", N: cfg.rangesCold, Pairs: cfg.peerPairs}},
		{"full-table aggregate, warm (count, sum(length(v)))", true, cfg.scanPairs, scan,
			peerCase{Kind: "scan", Warm: true, Pairs: cfg.peerScanPairs}},
		{"full-table aggregate, cold (new connection)", false, cfg.scanPairs, scan,
			peerCase{Kind: "scan", Pairs: cfg.peerScanPairs}},
	}
	var peer []string
	if b.peerOn() {
		peer = b.peerReads(big, storeRoot, walPath, cases)
	}
	for k, c := range cases {
		s := interleaveN(b.cfg.scaled(c.n),
			func(i int) time.Duration { return w.run(t, c.warm, c.sample(i)) },
			func(i int) time.Duration { return wal.run(t, c.warm, c.sample(i)) },
			func(i int) time.Duration { return roll.run(t, c.warm, c.sample(i)) })
		r := readRow(c.what, s, "")
		if peer != nil {
			r.peer = peer[k]
		}
		b.add(r)
	}

	// The same reads once versions pile up unfolded: a long read
	// transaction on another connection pins the base file's TXID, so
	// nothing folds while cfg.unfolded small files are applied. Each file
	// rewrites one page's unused gap (logically the same database), so
	// walrust and the copies still read the same rows.
	long, err := w.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Close()
	tx, err := long.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var one int64
	if err := tx.QueryRow("SELECT count(*) FROM t WHERE id <= 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	last := publishGapEdits(t, big, storeRoot, cfg.unfolded)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var txid int64
		if err := w.conn.QueryRowContext(ctx, "PRAGMA walrust_txid").Scan(&txid); err != nil {
			t.Fatal(err)
		}
		if txid == int64(last) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reads: replica at TXID %d, want %d", txid, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.logf("reads: %d versions applied behind a long read transaction in %s", cfg.unfolded, time.Since(start).Round(time.Millisecond))
	for _, c := range []struct {
		what   string
		n      int
		sample func(i int) func(c *sql.Conn, st readStmts) error
	}{
		{fmt.Sprintf("point lookups, warm, %d versions unfolded behind a long read transaction", cfg.unfolded), cfg.readPairs, lookups(cfg.lookupsWarm)},
		{fmt.Sprintf("full-table aggregate, warm, %d versions unfolded behind a long read transaction", cfg.unfolded), cfg.scanPairs, scan},
	} {
		s := interleaveN(b.cfg.scaled(c.n),
			func(i int) time.Duration { return w.run(t, true, c.sample(i)) },
			func(i int) time.Duration { return wal.run(t, true, c.sample(i)) },
			func(i int) time.Duration { return roll.run(t, true, c.sample(i)) })
		b.add(readRow(c.what, s, ""))
	}
}

// readCase is one read row: its Go sample, and the same for the peer child.
type readCase struct {
	what   string
	warm   bool
	n      int
	sample func(i int) func(c *sql.Conn, st readStmts) error
	peer   peerCase
}

// readRow makes a row of the samples of walrust, the WAL-mode copy and the
// rollback-mode copy (interleaveN's order). The target is the issue's: within
// 1.05× of the WAL-mode copy, what a user would otherwise read.
func readRow(what string, s [][]time.Duration, peer string) row {
	pw, pr := pairs{s[0], s[1]}, pairs{s[0], s[2]}
	ratio, noise := pw.ratio()
	ratio2, noise2 := pr.ratio()
	ma, mb, mc := median(durs(s[0])), median(durs(s[1])), median(durs(s[2]))
	return row{
		group: "reads", what: what,
		walrust:  fmtSec(ma) + " /sample",
		baseline: fmtSec(mb),
		a:        ma, b: mb, noise: noise,
		base2: fmtSec(mc), ratio2: ratio2, noise2: noise2,
		target: "≤ 1.05", meets: meets(ratio <= 1.05),
		peer: peer,
	}
}

// copies writes the two baselines' files next to the replica: a
// rollback-mode copy of the primary (bytes 18 and 19 of the header = 1,
// as makeDB leaves it) and a WAL-mode copy (= 2, as Litestream's restore and
// a WAL primary leave it). Neither shares an inode with the replica, whose
// file locks walrust takes itself.
func copies(t testing.TB, src, dir string) (walPath, rollPath string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if data[18] != 1 || data[19] != 1 {
		t.Fatalf("%s: header bytes 18/19 are %d/%d, want a rollback-mode file", src, data[18], data[19])
	}
	rollPath, walPath = filepath.Join(dir, "rollback.db"), filepath.Join(dir, "wal.db")
	if err := os.WriteFile(rollPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	data[18], data[19] = 2, 2
	if err := os.WriteFile(walPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return walPath, rollPath
}
