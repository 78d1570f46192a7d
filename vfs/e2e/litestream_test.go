package e2e

// End-to-end: a real Litestream v0.5.18 replicates a WAL-mode primary under
// continuous writes, to a file replica and to a real S3 server (versitygw),
// with compaction intervals and an L0 retention short enough that L1 and L2
// compactions, snapshots and L0 deletions all happen during the test.
// walrust replicas, read through every client users have (the sqlite3
// shell, Debian's python3, Go, walrust-shell), must converge to the
// primary's exact content after each step.

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/s3test"
)

func TestLitestreamFile(t *testing.T) {
	dir := t.TempDir()
	storeDir := filepath.Join(dir, "store")
	if err := os.MkdirAll(storeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	followLitestream(t, dir, lsTarget{
		replicaYAML: fmt.Sprintf("      type: file\n      path: %s\n", storeDir),
		source:      "file://" + storeDir,
		wipe: func(t *testing.T) {
			if err := os.RemoveAll(filepath.Join(storeDir, "ltx")); err != nil {
				t.Fatal(err)
			}
		},
	})
}

func TestLitestreamS3(t *testing.T) {
	srv := s3test.Start(t, "walrust")
	srv.Env(t) // walrust's S3 credentials, for this process and its children
	followLitestream(t, t.TempDir(), s3Target(srv))
}

// s3Target is bucket "walrust", prefix "app" of srv, as Litestream and
// walrust each name it; wipe deletes it.
func s3Target(srv *s3test.Server) lsTarget {
	return lsTarget{
		replicaYAML: fmt.Sprintf(`      type: s3
      bucket: walrust
      path: app
      endpoint: %s
      region: %s
      force-path-style: true
      access-key-id: %s
      secret-access-key: %s
`, srv.Endpoint, s3test.Region, srv.AccessKey, srv.SecretKey),
		source:     srv.URL("walrust", "app"),
		uriParams:  "&endpoint=" + srv.Endpoint + "&region=" + s3test.Region,
		shellFlags: []string{"--endpoint", srv.Endpoint, "--region", s3test.Region, "--path-style"},
		storeOpts:  srv.Options(),
		wipe: func(t *testing.T) {
			// Straight from the server's directory: a bulk delete.
			if err := os.RemoveAll(filepath.Join(srv.Dir, "walrust", "app")); err != nil {
				t.Fatal(err)
			}
		},
	}
}

// The application's transactions.

// opRows inserts a row and updates one, and now and then deletes one.
func opRows(tx *sql.Tx, rnd *rand.Rand) error {
	if _, err := tx.Exec("INSERT INTO t (k, v) VALUES (?, ?)", rnd.Int64N(1_000_000), randomText(rnd, 20+rnd.IntN(60))); err != nil {
		return err
	}
	if _, err := tx.Exec("UPDATE t SET k = k + 1, v = ? WHERE id = (SELECT abs(random()) % max(id) + 1 FROM t)", randomText(rnd, 30)); err != nil {
		return err
	}
	if rnd.IntN(10) == 0 {
		if _, err := tx.Exec("DELETE FROM t WHERE id = (SELECT abs(random()) % max(id) + 1 FROM t)"); err != nil {
			return err
		}
	}
	return nil
}

const schemaChange = `
ALTER TABLE t ADD COLUMN note TEXT;
CREATE TABLE u (id INTEGER PRIMARY KEY, t_id INTEGER NOT NULL, label TEXT);
CREATE INDEX t_k ON t (k);
CREATE TABLE big (id INTEGER PRIMARY KEY, name TEXT, data BLOB);
`

// opSchema uses what schemaChange added.
func opSchema(tx *sql.Tx, rnd *rand.Rand) error {
	if err := opRows(tx, rnd); err != nil {
		return err
	}
	if _, err := tx.Exec("INSERT INTO u (t_id, label) VALUES ((SELECT max(id) FROM t), ?)", randomText(rnd, 12)); err != nil {
		return err
	}
	_, err := tx.Exec("UPDATE t SET note = ? WHERE id = (SELECT abs(random()) % max(id) + 1 FROM t)", randomText(rnd, 16))
	return err
}

// opLarge writes rows far larger than a page: overflow chains.
func opLarge(tx *sql.Tx, rnd *rand.Rand) error {
	if _, err := tx.Exec("INSERT INTO big (name, data) VALUES (?, ?)", randomText(rnd, 3000+rnd.IntN(9000)), randomBlob(rnd, 5000+rnd.IntN(30000))); err != nil {
		return err
	}
	if rnd.IntN(3) == 0 {
		_, err := tx.Exec("UPDATE big SET data = ? WHERE id = (SELECT abs(random()) % max(id) + 1 FROM big)", randomBlob(rnd, 1000+rnd.IntN(20000)))
		return err
	}
	return nil
}

// opMixed is everything at once.
func opMixed(tx *sql.Tx, rnd *rand.Rand) error {
	if err := opSchema(tx, rnd); err != nil {
		return err
	}
	if rnd.IntN(8) == 0 {
		return opLarge(tx, rnd)
	}
	return nil
}

func storeHead(levels map[int][]store.FileInfo) ltx.TXID {
	var head ltx.TXID
	for _, files := range levels {
		for _, f := range files {
			head = max(head, f.MaxTXID)
		}
	}
	return head
}

// waitStoreAdvance waits until the store's newest TXID has moved n past
// where it is now.
func waitStoreAdvance(t *testing.T, p *lsPrimary, tg lsTarget, n ltx.TXID) {
	t.Helper()
	from := storeHead(storeLevels(t, tg))
	waitStore(t, p, tg, fmt.Sprintf("TXID %s", from+n), func(l map[int][]store.FileInfo) bool { return storeHead(l) >= from+n })
}

func followLitestream(t *testing.T, dir string, tg lsTarget) {
	start := time.Now()
	if keep := os.Getenv("WALRUST_LITESTREAM_KEEP"); keep != "" {
		// For debugging: keep the primary, the store (file target) and the
		// replicas of a failed run.
		t.Cleanup(func() {
			if t.Failed() {
				exec.Command("cp", "-a", dir, keep).Run()
			}
		})
	}
	p := startPrimary(t, dir, tg)
	local := func(name string) string { return filepath.Join(dir, "replica-"+name+".db") }

	// Two clients from the start; the other two start late.
	shell := startShellClient(t, local("sqlite3"), tg)
	goc := startGoClient(t, local("go"), tg)
	clients := []lsClient{shell, goc}

	// Steady inserts and updates, until Litestream has compacted into L1
	// and written a snapshot.
	w := p.startWriter(2*time.Millisecond, opRows)
	waitStore(t, p, tg, "an L1 compaction and a snapshot", func(l map[int][]store.FileInfo) bool {
		return len(l[1]) > 0 && len(l[store.SnapshotLevel]) > 0
	})
	w.waitCommits(t, 100)
	n := w.stop(t)
	converge(t, p, clients, fmt.Sprintf("steady writes (%d transactions)", n))

	// A schema change, then writes that use it.
	p.exec(schemaChange)
	w = p.startWriter(2*time.Millisecond, opSchema)
	waitStoreAdvance(t, p, tg, 5)
	w.stop(t)
	converge(t, p, clients, "schema change")

	// Rows that need overflow pages.
	w = p.startWriter(10*time.Millisecond, opLarge)
	w.waitCommits(t, 40)
	waitStoreAdvance(t, p, tg, 3)
	w.stop(t)
	converge(t, p, clients, "large rows")

	// Replicas started late: by now Litestream has deleted the first L0
	// files and compacted into L2, so they bootstrap from a snapshot and
	// catch up through whatever levels reach the head.
	w = p.startWriter(2*time.Millisecond, opMixed)
	levels := waitStore(t, p, tg, "L0 deletions and an L2 compaction", func(l map[int][]store.FileInfo) bool {
		return len(l[0]) > 0 && l[0][0].MinTXID > 1 && len(l[2]) > 0
	})
	t.Logf("store before the late replicas:%s", describeLevels(levels))
	py := startPythonClient(t, local("python"), tg)
	ws := startWalrustShellClient(t, local("walrust-shell"), tg)
	clients = append(clients, py, ws)
	for _, c := range []lsClient{py, ws} {
		// The first query waits for the bootstrap.
		if _, err := c.query("PRAGMA walrust_txid"); err != nil {
			t.Fatalf("late %s: %v", c.name(), err)
		}
	}
	waitStoreAdvance(t, p, tg, 5)
	w.stop(t)
	converge(t, p, clients, "replicas started late")

	// Replicas stopped for longer than the L0 retention: when they come
	// back, the L0 files right after their TXID are gone.
	var stopped ltx.TXID
	for _, c := range []lsClient{shell, goc} {
		txid, err := clientInt(c, "PRAGMA walrust_txid")
		if err != nil {
			t.Fatal(err)
		}
		stopped = max(stopped, ltx.TXID(txid))
		c.stop()
	}
	w = p.startWriter(2*time.Millisecond, opMixed)
	levels = waitStore(t, p, tg, fmt.Sprintf("L0 deleted past TXID %s", stopped+1), func(l map[int][]store.FileInfo) bool {
		return len(l[0]) > 0 && l[0][0].MinTXID > stopped+1
	})
	t.Logf("stopped replicas at TXID %s; store:%s", stopped, describeLevels(levels))
	shell = startShellClient(t, local("sqlite3"), tg)
	goc = startGoClient(t, local("go"), tg)
	clients = []lsClient{shell, goc, py, ws}
	waitStoreAdvance(t, p, tg, 3)
	w.stop(t)
	converge(t, p, clients, "replicas restarted after the L0 retention")
	if st, err := goc.query("PRAGMA walrust_status"); err == nil {
		t.Logf("go replica after its restart: %s", strings.Join(st, ""))
	}

	// VACUUM: the database shrinks, and so must every replica.
	before := p.queryInt("PRAGMA page_count")
	p.exec("DELETE FROM big WHERE id % 4 != 0")
	p.exec("DELETE FROM t WHERE id % 2 = 0")
	p.exec("VACUUM")
	after := p.queryInt("PRAGMA page_count")
	if after >= before {
		t.Fatalf("VACUUM did not shrink the primary: %d -> %d pages", before, after)
	}
	converge(t, p, clients, fmt.Sprintf("VACUUM (%d -> %d pages)", before, after))
	for _, c := range clients {
		if n, err := clientInt(c, "PRAGMA page_count"); err != nil || n != after {
			t.Fatalf("%s: page_count = %d, %v; want %d", c.name(), n, err, after)
		}
	}

	// Litestream restarted on the primary (a clean stop), while the
	// application keeps writing.
	w = p.startWriter(2*time.Millisecond, opMixed)
	w.waitCommits(t, 50)
	p.stopLitestream(syscall.SIGTERM)
	w.waitCommits(t, 100)
	p.startLitestream()
	waitStoreAdvance(t, p, tg, 5)
	w.stop(t)
	converge(t, p, clients, "Litestream restarted")

	// Litestream killed, its local state (the -litestream directory) lost,
	// and started again: it picks up from the store's newest L0 file.
	w = p.startWriter(2*time.Millisecond, opMixed)
	w.waitCommits(t, 50)
	p.stopLitestream(syscall.SIGKILL)
	if err := os.RemoveAll(filepath.Join(dir, ".primary.db-litestream")); err != nil {
		t.Fatal(err)
	}
	w.waitCommits(t, 100)
	p.startLitestream()
	waitStoreAdvance(t, p, tg, 5)
	w.stop(t)
	converge(t, p, clients, "Litestream restarted without its local state")

	levels = storeLevels(t, tg)
	t.Logf("store:%s", describeLevels(levels))
	if len(levels[1]) == 0 || len(levels[2]) == 0 || len(levels[store.SnapshotLevel]) < 2 || levels[0][0].MinTXID == 1 {
		t.Fatalf("Litestream did not compact, snapshot and delete as configured:%s", describeLevels(levels))
	}

	// The store wiped and Litestream started over without its local state:
	// it starts a new lineage from TXID 1, below the replicas' TXIDs. They
	// notice that the store lost their head and re-bootstrap.
	oldHead := storeHead(levels)
	w = p.startWriter(2*time.Millisecond, opMixed)
	w.waitCommits(t, 50)
	p.stopLitestream(syscall.SIGKILL)
	if err := os.RemoveAll(filepath.Join(dir, ".primary.db-litestream")); err != nil {
		t.Fatal(err)
	}
	tg.wipe(t)
	w.waitCommits(t, 50)
	p.startLitestream()
	levels = waitStore(t, p, tg, "a new lineage with a snapshot", func(l map[int][]store.FileInfo) bool {
		return len(l[store.SnapshotLevel]) > 0
	})
	if h := storeHead(levels); h >= oldHead {
		t.Fatalf("Litestream did not start over from TXID 1: store head %s, was %s", h, oldHead)
	}
	waitStoreAdvance(t, p, tg, 3)
	w.stop(t)
	converge(t, p, clients, fmt.Sprintf("store wiped, new lineage (TXIDs from 1, the old head was %s)", oldHead))

	// walrust-shell as a one-shot command (-c) on the replica its
	// interactive run kept up to date.
	ws.stop()
	converge(t, p, []lsClient{newWalrustShellOnce(t, local("walrust-shell"), tg)}, "walrust-shell -c")
	t.Logf("store at the end:%s (%s)", describeLevels(storeLevels(t, tg)), time.Since(start).Round(time.Millisecond))
}
