package vfs_test

// Helpers for the end-to-end tests against a real Litestream v0.5 primary
// (litestream_test.go): the primary database and its writer, the Litestream
// process, the content hash every client is compared by, and the clients
// themselves (the sqlite3 shell, Debian's python3, Go in this process,
// walrust-shell).

import (
	"bufio"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
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
	"github.com/walrust/walrust/vfs/testtool"
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
	t.Cleanup(func() { db.Close() })
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
	deadline := time.Now().Add(60 * time.Second)
	for w.n.Load() < target {
		select {
		case err := <-w.done:
			w.done <- err
			t.Fatalf("writer stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("writer did not commit %d transactions within 60s", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
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

// lsClient is one way users read a walrust replica.
type lsClient interface {
	name() string
	// query runs a one-column query and returns its values as text.
	query(q string) ([]string, error)
	stop()
}

// replicaURI is the URI every client opens its replica by.
func replicaURI(path string, tg lsTarget) string {
	return fmt.Sprintf("file:%s?vfs=walrust&source=%s&interval=100ms%s", path, tg.source, tg.uriParams)
}

// goClient is Go in this process: mattn/go-sqlite3 with the VFS registered
// by vfs.Register (TestMain).
type goClient struct{ db *sql.DB }

func startGoClient(t *testing.T, path string, tg lsTarget) lsClient {
	db, err := sql.Open("sqlite3", replicaURI(path, tg))
	if err != nil {
		t.Fatal(err)
	}
	c := &goClient{db: db}
	t.Cleanup(c.stop)
	return c
}

func (c *goClient) name() string                     { return "go" }
func (c *goClient) query(q string) ([]string, error) { return queryLines(c.db, q) }
func (c *goClient) stop()                            { c.db.Close() }

// endMark is the line an interactive client prints after each result.
const endMark = "--walrust-end--"

// procClient is a long-running interpreter (the sqlite3 shell, python3)
// that reads one query per line on stdin and answers with the result's
// lines and then endMark.
type procClient struct {
	label  string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr testtool.Buffer
	wrap   func(q string) string                // what to send for one query
	parse  func(out []string) ([]string, error) // nil: the lines are the values
	done   chan struct{}
	once   sync.Once
}

func startProc(t *testing.T, label string, cmd *exec.Cmd, wrap func(string) string, preamble string) *procClient {
	t.Helper()
	c := &procClient{label: label, cmd: cmd, wrap: wrap, lines: make(chan string, 1024), done: make(chan struct{})}
	cmd.Stderr = &c.stderr
	cmd.Env = childEnv()
	setDeathSignal(cmd)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", label, err)
	}
	c.stdin = stdin
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 64<<20) // rows with large values are long lines
		for sc.Scan() {
			c.lines <- strings.TrimRight(sc.Text(), "\r")
		}
		close(c.lines)
	}()
	go func() {
		_ = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		c.stop()
		if t.Failed() {
			t.Logf("%s stderr:\n%s", label, tail(c.stderr.String(), 3000))
		}
	})
	if preamble != "" {
		if _, err := io.WriteString(stdin, preamble); err != nil {
			t.Fatalf("%s: %v", label, err)
		}
	}
	return c
}

func (c *procClient) name() string { return c.label }

func (c *procClient) query(q string) ([]string, error) {
	if _, err := io.WriteString(c.stdin, c.wrap(q)); err != nil {
		return nil, fmt.Errorf("%s: write: %v; stderr: %s", c.label, err, tail(c.stderr.String(), 500))
	}
	var out []string
	timeout := time.NewTimer(60 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				return nil, fmt.Errorf("%s exited; stderr: %s", c.label, tail(c.stderr.String(), 500))
			}
			if l == endMark {
				if c.parse != nil {
					var err error
					if out, err = c.parse(out); err != nil {
						return nil, fmt.Errorf("%s: %v; stderr: %s", c.label, err, tail(c.stderr.String(), 300))
					}
				}
				if len(out) == 0 {
					// The sqlite3 shell reports a failed query on stderr only.
					return nil, fmt.Errorf("%s: no rows; stderr: %s", c.label, tail(c.stderr.String(), 300))
				}
				if strings.HasPrefix(out[0], "ERR ") {
					return nil, fmt.Errorf("%s: %s", c.label, out[0])
				}
				return out, nil
			}
			out = append(out, l)
		case <-timeout.C:
			return nil, fmt.Errorf("%s: no answer within 60s; stderr: %s", c.label, tail(c.stderr.String(), 500))
		}
	}
}

// stop ends the interpreter by closing its stdin, as a user would, and
// kills it if it does not exit.
func (c *procClient) stop() {
	c.once.Do(func() {
		c.stdin.Close()
		select {
		case <-c.done:
		case <-time.After(15 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	})
}

// startShellClient runs the sqlite3 shell: .load the extension, .open the
// replica by URI.
func startShellClient(t *testing.T, path string, tg lsTarget) lsClient {
	ext := testtool.Extension(t)
	sqlite3 := testtool.Program(t, "sqlite3")
	stdbuf := testtool.Program(t, "stdbuf")
	cmd := exec.Command(stdbuf, "-oL", sqlite3, "-batch", "-noheader")
	wrap := func(q string) string { return q + ";\nSELECT '" + endMark + "';\n" }
	return startProc(t, "sqlite3", cmd, wrap, fmt.Sprintf(".load %s\n.open '%s'\n", ext, replicaURI(path, tg)))
}

// pythonClient is the script Debian's python3 runs: load the extension on
// one connection, open the replica by URI on another, answer queries.
const pythonClient = `
import sqlite3, sys
ext, uri, end = sys.argv[1], sys.argv[2], sys.argv[3]
loader = sqlite3.connect(":memory:")
loader.enable_load_extension(True)
loader.load_extension(ext)
db = sqlite3.connect(uri, uri=True)
for q in sys.stdin:
    try:
        for row in db.execute(q):
            print(row[0])
    except Exception as e:
        print("ERR " + str(e).replace("\n", " "))
    print(end, flush=True)
`

func startPythonClient(t *testing.T, path string, tg lsTarget) lsClient {
	ext := testtool.Extension(t)
	python := testtool.Program(t, "/usr/bin/python3")
	cmd := exec.Command(python, "-c", pythonClient, ext, replicaURI(path, tg), endMark)
	return startProc(t, "python3", cmd, func(q string) string { return q + "\n" }, "")
}

// startWalrustShellClient runs build/walrust-shell reading statements from
// stdin (not a terminal), which prints each result as a table and flushes it.
func startWalrustShellClient(t *testing.T, path string, tg lsTarget) lsClient {
	bin := testtool.Built(t, "walrust-shell")
	cmd := exec.Command(bin, append([]string{tg.source, "--local", path, "--interval", "100ms"}, tg.shellFlags...)...)
	wrap := func(q string) string { return q + ";\nSELECT '" + endMark + "' AS end_mark;\n" }
	c := startProc(t, "walrust-shell", cmd, wrap, "")
	c.parse = parseShellTable
	return c
}

// parseShellTable takes the values out of walrust-shell's tables for a
// one-column query followed by the end_mark query: the column name, a rule
// of dashes, the values; then "end_mark" and its rule (the end mark itself
// has been taken off). A failed query prints nothing on stdout.
func parseShellTable(out []string) ([]string, error) {
	if len(out) < 2 || out[len(out)-2] != "end_mark" || strings.Trim(out[len(out)-1], "-") != "" {
		return nil, fmt.Errorf("unexpected output %q", tail(strings.Join(out, "\n"), 300))
	}
	out = out[:len(out)-2]
	if len(out) == 0 {
		return nil, errors.New("no rows")
	}
	if len(out) < 2 || strings.Trim(out[1], "-") != "" {
		return nil, fmt.Errorf("unexpected output %q", tail(strings.Join(out, "\n"), 300))
	}
	for i, l := range out[2:] {
		out[2+i] = strings.TrimSpace(l)
	}
	return out[2:], nil
}

// walrustShellOnce is walrust-shell as a one-shot command: each query is
// `walrust-shell SOURCE --local PATH -c SQL`. A run answers from the local
// replica as it is when the query runs (it does not wait for its follower
// to catch up), so it converges only as fast as runs make progress.
type walrustShellOnce struct {
	bin, path string
	tg        lsTarget
}

func newWalrustShellOnce(t *testing.T, path string, tg lsTarget) lsClient {
	return &walrustShellOnce{bin: testtool.Built(t, "walrust-shell"), path: path, tg: tg}
}

func (c *walrustShellOnce) name() string { return "walrust-shell -c" }
func (c *walrustShellOnce) stop()        {}

func (c *walrustShellOnce) query(q string) ([]string, error) {
	bin, path, tg := c.bin, c.path, c.tg
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{tg.source, "--local", path}, tg.shellFlags...)
	cmd := exec.CommandContext(ctx, bin, append(args, "-c", q)...)
	cmd.Env = childEnv()
	setDeathSignal(cmd)
	var stderr testtool.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("walrust-shell -c: %v; stderr: %s", err, tail(stderr.String(), 500))
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) < 2 || strings.Trim(lines[1], "-") != "" {
		return nil, fmt.Errorf("walrust-shell -c: unexpected output %q", tail(string(out), 300))
	}
	return lines[2:], nil
}

// converge waits until every client's content hash equals the primary's.
// The writer must be stopped; Litestream may still be uploading, and its
// own bookkeeping (_litestream_seq) may still change the primary, so the
// primary is hashed again in every round.
func converge(t *testing.T, p *lsPrimary, clients []lsClient, what string) string {
	t.Helper()
	start := time.Now()
	deadline := start.Add(60 * time.Second)
	last := map[string]string{}
	for {
		p.alive()
		q, err := dumpQuery(p.db)
		if err != nil {
			t.Fatalf("%s: primary schema: %v", what, err)
		}
		lines, err := queryLines(p.db, q)
		if err != nil {
			t.Fatalf("%s: primary dump: %v", what, err)
		}
		want := hashLines(lines)
		all := true
		for _, c := range clients {
			got, err := c.query(q)
			if err != nil {
				last[c.name()] = err.Error()
				all = false
				continue
			}
			if h := hashLines(got); h != want {
				last[c.name()] = "hash " + h + ", want " + want
				all = false
				continue
			}
			last[c.name()] = "ok"
		}
		if all {
			t.Logf("%s: %d clients converged to %s in %s", what, len(clients), want, time.Since(start).Round(time.Millisecond))
			return want
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, c := range clients {
				fmt.Fprintf(&b, "\n  %s: %s", c.name(), last[c.name()])
			}
			t.Fatalf("%s: clients did not converge to the primary within 60s:%s", what, b.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// clientInt runs a one-value query through a client.
func clientInt(c lsClient, q string) (int64, error) {
	lines, err := c.query(q)
	if err != nil {
		return 0, err
	}
	if len(lines) != 1 {
		return 0, fmt.Errorf("%s: %s: %d lines", c.name(), q, len(lines))
	}
	var n int64
	if _, err := fmt.Sscan(strings.TrimSpace(lines[0]), &n); err != nil {
		return 0, fmt.Errorf("%s: %s: %q", c.name(), q, lines[0])
	}
	return n, nil
}

// storeLevels lists every level of the store through walrust's own store
// package.
func storeLevels(t *testing.T, tg lsTarget) map[int][]store.FileInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, tg.source, tg.storeOpts)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	levels := map[int][]store.FileInfo{}
	for level := 0; level <= store.SnapshotLevel; level++ {
		files, err := st.ListAfter(ctx, level, 0)
		if err != nil {
			t.Fatalf("list store: %v", err)
		}
		if len(files) > 0 {
			levels[level] = files
		}
	}
	return levels
}

func describeLevels(levels map[int][]store.FileInfo) string {
	var b strings.Builder
	for level := 0; level <= store.SnapshotLevel; level++ {
		files := levels[level]
		if len(files) == 0 {
			continue
		}
		fmt.Fprintf(&b, " L%d: %d files %s..%s;", level, len(files), files[0].MinTXID, files[len(files)-1].MaxTXID)
	}
	return b.String()
}

// waitStore waits until cond holds for the store's listing.
func waitStore(t *testing.T, p *lsPrimary, tg lsTarget, what string, cond func(map[int][]store.FileInfo) bool) map[int][]store.FileInfo {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		p.alive()
		levels := storeLevels(t, tg)
		if cond(levels) {
			return levels
		}
		if time.Now().After(deadline) {
			t.Fatalf("store never showed %s within 60s:%s", what, describeLevels(levels))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func randomText(rnd *rand.Rand, n int) string {
	b := make([]byte, n/2+1)
	for i := range b {
		b[i] = byte(rnd.Uint32())
	}
	return hex.EncodeToString(b)[:n]
}

func randomBlob(rnd *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rnd.Uint32())
	}
	return b
}
