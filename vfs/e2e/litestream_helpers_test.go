package e2e

// Helpers for the end-to-end tests against a real Litestream v0.5 primary
// (litestream_test.go): the primary database and its writer, the Litestream
// process, and the content hash every client is compared by; the clients
// themselves are in litestream_clients_test.go.

import (
	"crypto/sha256"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// lsTarget is where Litestream replicates to and how walrust reaches it.
type lsTarget struct {
	replicaYAML string   // the db's "replica:" mapping, indented for litestream.yml
	source      string   // walrust's source URL
	uriParams   string   // extra walrust URI parameters ("&endpoint=...")
	shellFlags  []string // the same for walrust-shell
	storeOpts   store.Options
	wipe        func(t *testing.T) // deletes everything Litestream wrote
}

// litestreamConfig is the primary's litestream.yml: short compaction
// intervals and a short L0 retention, so that L1 and L2 compactions,
// snapshots and L0 deletions all happen within a few seconds.
func litestreamConfig(dbPath string, tg lsTarget) string {
	return fmt.Sprintf(`levels:
  - interval: 1s
  - interval: 3s
snapshot:
  interval: 4s
  retention: 1h
l0-retention: 2s
l0-retention-check-interval: 500ms
logging:
  level: info
dbs:
  - path: %s
    monitor-interval: 50ms
    replica:
%s      sync-interval: 100ms
`, dbPath, tg.replicaYAML)
}

// primaryDriver is mattn/go-sqlite3 with SQLite's automatic checkpoints
// off on every connection, leaving checkpoints to Litestream.
//
// With them on, an application that keeps writing while Litestream is
// stopped checkpoints and restarts the WAL, and Litestream v0.5.18, started
// again, can continue its L0 chain from the new WAL without the frames that
// were written after its last sync and checkpointed meanwhile (its verify
// only looks at the frame before its saved offset; db.go verifyWithExecutor
// and lastPageMatch). The chain then no longer matches the database: its
// own restore through those files yields the same malformed database as a
// walrust replica that applied them. Only its next snapshot is right.
const primaryDriver = "sqlite3-litestream-primary"

func init() {
	sql.Register(primaryDriver, &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		_, err := c.Exec("PRAGMA wal_autocheckpoint = 0", nil)
		return err
	}})
}

// lsPrimary is a WAL-mode database that a Litestream process replicates.
type lsPrimary struct {
	t       *testing.T
	path    string
	db      *sql.DB // the application's connection (mattn/go-sqlite3)
	cfgPath string
	bin     string
	log     testtool.Buffer // Litestream's output, across restarts

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func startPrimary(t *testing.T, dir string, tg lsTarget) *lsPrimary {
	t.Helper()
	p := &lsPrimary{t: t, path: filepath.Join(dir, "primary.db"), cfgPath: filepath.Join(dir, "litestream.yml"), bin: testtool.Built(t, "litestream")}
	db, err := sql.Open(primaryDriver, "file:"+p.path+"?_journal_mode=WAL&_busy_timeout=10000&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { closeDB(t, db) })
	p.db = db
	p.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, k INTEGER NOT NULL, v TEXT NOT NULL)")
	if err := os.WriteFile(p.cfgPath, []byte(litestreamConfig(p.path, tg)), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.stopLitestream(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("litestream output:\n%s", tail(p.log.String(), 6000))
		}
	})
	p.startLitestream()
	return p
}

func (p *lsPrimary) exec(q string, args ...any) {
	p.t.Helper()
	if _, err := p.db.Exec(q, args...); err != nil {
		p.t.Fatalf("primary: %s: %v", q, err)
	}
}

func (p *lsPrimary) queryInt(q string) int64 {
	p.t.Helper()
	var n int64
	if err := p.db.QueryRow(q).Scan(&n); err != nil {
		p.t.Fatalf("primary: %s: %v", q, err)
	}
	return n
}

// startLitestream runs `litestream replicate -config litestream.yml`.
func (p *lsPrimary) startLitestream() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		p.t.Fatal("litestream already runs")
	}
	cmd := exec.Command(p.bin, "replicate", "-config", p.cfgPath)
	cmd.Stdout, cmd.Stderr = &p.log, &p.log
	cmd.Env = litestreamEnv()
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start litestream: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	p.cmd, p.done = cmd, done
}

// stopLitestream stops Litestream with sig (SIGTERM: a clean shutdown that
// syncs what is pending; SIGKILL: a crash) and waits for it to exit.
func (p *lsPrimary) stopLitestream(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd, p.done = nil, nil
}

// childEnv is the environment for child processes: this process's, which
// holds the test server's AWS credentials when there is one.
func childEnv() []string {
	return os.Environ()
}

// litestreamEnv is childEnv without AWS_CA_BUNDLE: with it set, Litestream
// v0.5.18 cannot start an S3 replica at all ("unable to add custom RootCAs
// HTTPClient, has no WithTransportOptions, *http.Client": it hands the AWS
// SDK a plain *http.Client). The test server is plain HTTP on loopback.
func litestreamEnv() []string {
	var env []string
	for _, kv := range childEnv() {
		if !strings.HasPrefix(kv, "AWS_CA_BUNDLE=") {
			env = append(env, kv)
		}
	}
	return env
}

// alive fails the test if Litestream has exited without being stopped.
func (p *lsPrimary) alive() {
	p.t.Helper()
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return
	}
	select {
	case <-done:
		p.t.Fatalf("litestream exited:\n%s", tail(p.log.String(), 3000))
	default:
	}
}

func setDeathSignal(cmd *exec.Cmd) {
	// The kernel kills the child if the test process dies without running
	// its cleanups (a panic, a timeout, kill -9).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// lsWriter is the application writing to the primary, one small
// transaction after another, until stopped.
type lsWriter struct {
	stopc chan struct{}
	done  chan error
	n     atomic.Int64 // transactions committed
}

// startWriter runs op in a transaction repeatedly, pausing between
// transactions, until stopWriter.
func (p *lsPrimary) startWriter(pause time.Duration, op func(tx *sql.Tx, rnd *rand.Rand) error) *lsWriter {
	w := &lsWriter{stopc: make(chan struct{}), done: make(chan error, 1)}
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	go func() {
		for {
			select {
			case <-w.stopc:
				w.done <- nil
				return
			default:
			}
			tx, err := p.db.Begin()
			if err == nil {
				if err = op(tx, rnd); err != nil {
					tx.Rollback()
				} else {
					err = tx.Commit()
				}
			}
			if err != nil {
				w.done <- fmt.Errorf("writer, transaction %d: %w", w.n.Load()+1, err)
				return
			}
			w.n.Add(1)
			time.Sleep(pause)
		}
	}()
	return w
}

// stop stops the writer and fails the test if a transaction failed.
func (w *lsWriter) stop(t *testing.T) int64 {
	t.Helper()
	close(w.stopc)
	if err := <-w.done; err != nil {
		t.Fatal(err)
	}
	return w.n.Load()
}

// waitCommits waits until the writer has committed n more transactions.
func (w *lsWriter) waitCommits(t *testing.T, n int64) {
	t.Helper()
	target := w.n.Load() + n
	testtool.Eventually(t, fmt.Sprintf("the writer to commit %d transactions", n), 60*time.Second, func() error {
		if c := w.n.Load(); c < target {
			select {
			case err := <-w.done:
				w.done <- err
				t.Fatalf("writer stopped: %v", err)
			default:
			}
			return fmt.Errorf("%d to go", target-c)
		}
		return nil
	})
}

// The content hash. Every client runs the same query, built from the
// primary's schema, which returns one text line per schema object, one for
// the page count, and one per row of every table (ordered by table and
// rowid); the lines are hashed in Go by hashLines. Text is hex-encoded so
// that any content fits on one line, and the query uses only SQL that
// every SQLite version here formats the same way (no REAL values).

// dumpQuery builds the query for the primary's current schema.
func dumpQuery(db *sql.DB) (string, error) {
	rows, err := db.Query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
	if err != nil {
		return "", err
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return "", err
		}
		tables = append(tables, name)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return "", err
	}
	parts := []string{
		"SELECT 0 AS k, 0 AS r, 'S' || hex(type || '|' || name || '|' || tbl_name || '|' || rootpage || '|' || coalesce(sql, '')) AS line FROM sqlite_master",
		"SELECT 1, 0, 'P' || page_count FROM pragma_page_count()",
	}
	for i, tbl := range tables {
		cols, err := columns(db, tbl)
		if err != nil {
			return "", err
		}
		exprs := make([]string, len(cols))
		for j, c := range cols {
			q := quoteIdent(c)
			exprs[j] = fmt.Sprintf("CASE typeof(%s) WHEN 'text' THEN 'T' || hex(%s) ELSE quote(%s) END", q, q, q)
		}
		parts = append(parts, fmt.Sprintf("SELECT %d, rowid, '%s:' || %s FROM %s",
			i+2, strings.ReplaceAll(tbl, "'", "''"), strings.Join(exprs, " || ',' || "), quoteIdent(tbl)))
	}
	return "SELECT line FROM (" + strings.Join(parts, " UNION ALL ") + ") ORDER BY k, r, line", nil
}

func columns(db *sql.DB, table string) ([]string, error) {
	rows, err := db.Query("SELECT name FROM pragma_table_info(?) ORDER BY cid", table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// hashLines is the one content hash of every client.
func hashLines(lines []string) string {
	h := sha256.New()
	for _, l := range lines {
		io.WriteString(h, l)
		h.Write([]byte{'\n'})
	}
	return fmt.Sprintf("%x (%d lines)", h.Sum(nil)[:8], len(lines))
}

// queryLines runs a one-column query through database/sql.
func queryLines(db *sql.DB, q string) ([]string, error) {
	rows, err := db.Query(q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		lines = append(lines, s)
	}
	return lines, rows.Err()
}
