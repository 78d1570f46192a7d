package bench

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
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

// reads compares walrust with SQLite's default VFS reading the very same
// file: the replica's base file, once the follower has installed the
// snapshot (a first bootstrap renames it into place: nothing is left to
// fold). Both go through mattn/go-sqlite3 with its default page cache
// (cache_size -2000, 2 MB), far smaller than the database; the OS page cache
// holds the whole file for both.
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
	dURI := fmt.Sprintf("file:%s?mode=ro", replicaPath)

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

	def := &readSide{name: "default VFS", db: openDB(t, dURI)}
	def.db.SetMaxIdleConns(0)
	if def.conn, err = def.db.Conn(ctx); err != nil {
		t.Fatal(err)
	}
	defer def.conn.Close()
	w.stmt, def.stmt = prepare(ctx, t, w.conn), prepare(ctx, t, def.conn)
	defer w.stmt.close()
	defer def.stmt.close()

	// Both must read the same data; this also warms the OS page cache.
	var nw, nd, lw, ld int64
	if err := w.conn.QueryRowContext(ctx, scanQuery).Scan(&nw, &lw); err != nil {
		t.Fatal(err)
	}
	if err := def.conn.QueryRowContext(ctx, scanQuery).Scan(&nd, &ld); err != nil {
		t.Fatal(err)
	}
	if nw != nd || lw != ld || nw != big.rows {
		t.Fatalf("walrust reads %d rows (%d bytes), the default VFS %d (%d); want %d rows", nw, lw, nd, ld, big.rows)
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
	cases := []struct {
		what   string
		warm   bool
		n      int
		sample func(i int) func(c *sql.Conn, st readStmts) error
	}{
		{fmt.Sprintf("point lookups by key, warm (%d per sample)", cfg.lookupsWarm), true, cfg.readPairs, lookups(cfg.lookupsWarm)},
		{fmt.Sprintf("point lookups by key, cold (new connection + %d lookups)", cfg.lookupsCold), false, cfg.readPairs, lookups(cfg.lookupsCold)},
		{fmt.Sprintf("range scans of %d rows, warm (%d per sample)", cfg.rangeRows, cfg.rangesWarm), true, cfg.readPairs, ranges(cfg.rangesWarm)},
		{fmt.Sprintf("range scans of %d rows, cold (new connection + %d scans)", cfg.rangeRows, cfg.rangesCold), false, cfg.readPairs, ranges(cfg.rangesCold)},
		{"full-table aggregate, warm (count, sum(length(v)))", true, cfg.scanPairs, scan},
		{"full-table aggregate, cold (new connection)", false, cfg.scanPairs, scan},
	}
	for _, c := range cases {
		p := interleave(b.cfg.scaled(c.n),
			func(i int) time.Duration { return w.run(t, c.warm, c.sample(i)) },
			func(i int) time.Duration { return def.run(t, c.warm, c.sample(i)) })
		ratio, noise := p.ratio()
		ma, mb := median(durs(p.a)), median(durs(p.b))
		b.add(row{
			group: "reads", what: c.what,
			walrust:  fmtSec(ma) + " /sample",
			baseline: fmtSec(mb) + " (default VFS, same file)",
			a:        ma, b: mb, noise: noise,
			target: "≤ 1.15", meets: meets(ratio <= 1.15),
		})
		_ = ratio
	}
}
