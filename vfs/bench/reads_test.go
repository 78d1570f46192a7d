package bench

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/store"
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

	// The same reads once versions pile up unfolded: a long read
	// transaction on another connection pins the base file's TXID, so
	// nothing folds while cfg.unfolded small files are applied. Each file
	// rewrites one page's unused gap (logically the same database), so
	// walrust and the default VFS, which still reads the base file, read
	// the same rows.
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
		p := interleave(b.cfg.scaled(c.n),
			func(i int) time.Duration { return w.run(t, true, c.sample(i)) },
			func(i int) time.Duration { return def.run(t, true, c.sample(i)) })
		ratio, noise := p.ratio()
		ma, mb := median(durs(p.a)), median(durs(p.b))
		b.add(row{
			group: "reads", what: c.what,
			walrust:  fmtSec(ma) + " /sample",
			baseline: fmtSec(mb) + " (default VFS, the base file)",
			a:        ma, b: mb, noise: noise,
			target: "≤ 1.15", meets: meets(ratio <= 1.15),
		})
	}
}

// publishGapEdits puts n LTX files at level 0 of the file store at root,
// TXIDs 2..n+1, each rewriting one random b-tree page of db with a byte
// changed in the page's unallocated gap (between the cell pointers and the
// cell content), which SQLite never reads: every version holds the same
// rows. It returns the last TXID.
func publishGapEdits(t testing.TB, db *testDB, root string, n int) ltx.TXID {
	t.Helper()
	st, err := store.OpenFile(root)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(db.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const ps = 4096
	rng := rand.New(rand.NewPCG(7, 7))
	page := make([]byte, ps)
	txid := ltx.TXID(1)
	for i := 0; i < n; {
		pgno := 2 + uint32(rng.Int64N(int64(db.pages-1)))
		if pgno == ltx.LockPgno(ps) {
			continue
		}
		if _, err := f.ReadAt(page, int64(pgno-1)*ps); err != nil {
			t.Fatal(err)
		}
		hsize := 8
		switch page[0] {
		case 0x0d, 0x0a: // leaf pages
		case 0x05, 0x02: // interior pages
			hsize = 12
		default:
			continue // an overflow or free page: leave it
		}
		lo := hsize + 2*int(binary.BigEndian.Uint16(page[3:]))
		hi := int(binary.BigEndian.Uint16(page[5:]))
		if hi == 0 {
			hi = 65536
		}
		if hi-lo < 1 {
			continue
		}
		page[lo+rng.IntN(hi-lo)] ^= 0x5a
		txid++
		var buf bytes.Buffer
		enc, err := ltx.NewEncoder(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if err := enc.EncodeHeader(ltx.Header{
			Version: ltx.Version, Flags: ltx.HeaderFlagNoChecksum, PageSize: ps, Commit: db.pages,
			MinTXID: txid, MaxTXID: txid, Timestamp: time.Now().UnixMilli(),
		}); err != nil {
			t.Fatal(err)
		}
		if err := enc.EncodePage(ltx.PageHeader{Pgno: pgno}, page); err != nil {
			t.Fatal(err)
		}
		if err := enc.Close(); err != nil {
			t.Fatal(err)
		}
		fi := store.FileInfo{Level: 0, MinTXID: txid, MaxTXID: txid}
		if err := st.Put(context.Background(), fi, &buf); err != nil {
			t.Fatal(err)
		}
		i++
	}
	return txid
}
