package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walrust/walrust/vfs/internal/testhooks"
	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/ltxtest"
	"github.com/walrust/walrust/vfs/testkit/s3test"
	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// The S3 tests' world: a primary publishing to a versitygw bucket, and
// replicas followed through Go or the sqlite3 shell.

const (
	s3Bucket = "bkt"
	s3Prefix = "app"
)

// s3World is one test's versitygw server, a primary database published to
// s3://bkt/app through an S3 store, and a directory for the replica.
type s3World struct {
	t        *testing.T
	srv      *s3test.Server
	st       store.Store // the publisher's own store (its own request counters)
	dir      string
	primary  *sql.DB
	primPath string
	pub      *ltxtest.Primary
	rows     int // rows in t on the primary
	log      *testtool.Buffer
}

// newS3World starts versitygw with the root credentials in the environment,
// captures walrust's log (and checks at the end that no secret is in it),
// and publishes an empty table t as a snapshot at TXID 1. noChecksum writes
// files the way Litestream does.
func newS3World(t *testing.T, noChecksum bool) *s3World {
	t.Helper()
	w := &s3World{t: t, srv: s3test.Start(t, s3Bucket), dir: t.TempDir(), log: &testtool.Buffer{}}
	w.srv.Env(t)
	restore := testhooks.SetLogger(slog.New(slog.NewTextHandler(w.log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() {
		restore()
		if strings.Contains(w.log.String(), w.srv.SecretKey) {
			t.Errorf("walrust's log shows the secret access key")
		}
		if t.Failed() {
			t.Logf("walrust log:\n%s", w.log)
		}
	})
	st, err := store.Open(context.Background(), w.srv.URL(s3Bucket, s3Prefix), w.srv.Options())
	if err != nil {
		t.Fatal(err)
	}
	w.st = st
	w.primPath = filepath.Join(t.TempDir(), "primary.db")
	db, err := sql.Open("sqlite3", "file:"+w.primPath+"?_journal_mode=DELETE&_synchronous=OFF")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { closeDB(t, db) })
	w.primary = db
	w.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
	w.pub = &ltxtest.Primary{Store: st, PageSize: 4096, NoChecksum: noChecksum}
	w.pub.Advance(ltxtest.ReadImage(t, w.primPath), 1)
	w.pub.Snapshot(t)
	return w
}

func (w *s3World) exec(q string, args ...any) {
	w.t.Helper()
	if _, err := w.primary.Exec(q, args...); err != nil {
		w.t.Fatalf("%s: %v", q, err)
	}
}

// insert adds n rows to the primary without publishing them.
func (w *s3World) insert(n int) {
	w.t.Helper()
	for range n {
		w.rows++
		w.exec("INSERT INTO t (v) VALUES (?)", fmt.Sprintf("row %d %s", w.rows, strings.Repeat("x", 500)))
	}
}

// commit inserts n rows and publishes them as the next TXID at L0.
func (w *s3World) commit(n int) store.FileInfo {
	w.t.Helper()
	w.insert(n)
	return w.pub.Commit(w.t, ltxtest.ReadImage(w.t, w.primPath))
}

// skip inserts n rows and moves the primary to the next TXID without
// publishing it: a file that retention removed before the replica saw it.
func (w *s3World) skip(n int) {
	w.t.Helper()
	w.insert(n)
	w.pub.Advance(ltxtest.ReadImage(w.t, w.primPath), w.pub.TXID+1)
}

func (w *s3World) delete(fi store.FileInfo) {
	w.t.Helper()
	if err := w.st.Delete(context.Background(), fi); err != nil {
		w.t.Fatal(err)
	}
}

// want is what a caught-up replica answers to s3Probe.
func (w *s3World) want() string { return fmt.Sprintf("%d|%d", w.pub.TXID, w.rows) }

// s3Probe is the TXID a replica serves and its rows, as TXID|rows.
func s3Probe(c s3Client) (string, error) {
	txid, err := c.query("PRAGMA walrust_txid")
	if err != nil {
		return "", err
	}
	n, err := c.query("SELECT count(*) FROM t")
	return txid + "|" + n, err
}

// s3Status is PRAGMA walrust_status.
type s3Status struct {
	TXID         uint64      `json:"txid"`
	LastPoll     time.Time   `json:"last_poll"`
	LastError    string      `json:"last_error"`
	FilesApplied int64       `json:"files_applied"`
	Bootstraps   int64       `json:"bootstraps"`
	Store        store.Stats `json:"store"`
	raw          string
}

func parseS3Status(t testing.TB, s string) s3Status {
	t.Helper()
	var st s3Status
	if err := json.Unmarshal([]byte(s), &st); err != nil {
		t.Fatalf("walrust_status %q: %v", s, err)
	}
	st.raw = s
	return st
}

// s3Client is a connection to a replica: through database/sql in this
// process, or through a sqlite3 shell.
type s3Client interface {
	// query returns the single value of a single-row query as text.
	query(q string) (string, error)
	close()
}

type s3Opener func(t *testing.T, dir, uri string) s3Client

// s3Openers are the clients a test runs through: Go with the VFS linked
// in, and the sqlite3 shell with the extension loaded.
var s3Openers = []struct {
	name string
	open s3Opener
}{
	{"go", s3OpenGo},
	{"sqlite3", s3OpenShell},
}

// s3GoClient is mattn/go-sqlite3 with the VFS linked in.
type s3GoClient struct {
	db *sql.DB
}

func s3OpenGo(t *testing.T, dir, uri string) s3Client {
	t.Helper()
	t.Chdir(dir) // the URI names the replica relative to the working directory
	db, err := sql.Open("sqlite3", uri)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeDB(t, db) })
	if err := db.Ping(); err != nil {
		t.Fatalf("open %s: %v", uri, err)
	}
	return &s3GoClient{db: db}
}

func (c *s3GoClient) query(q string) (string, error) {
	var s string
	err := c.db.QueryRow(q).Scan(&s)
	return s, err
}

// close closes every connection, which stops the follower: the last
// connection to a replica stops it before Close returns.
func (c *s3GoClient) close() { c.db.Close() }

// s3ShellClient is the sqlite3 shell with `.load build/walrust`.
type s3ShellClient struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  interface{ Write([]byte) (int, error) }
	closer func() error
	out    *testtool.Lines
	stderr *testtool.Buffer
}

const s3ShellEnd = "--end-of-answer--"

// s3StartShell runs sqlite3 in dir with the test's environment, loads the
// extension and opens uri.
func s3StartShell(t *testing.T, dir, uri string) *s3ShellClient {
	t.Helper()
	ext := testtool.Extension(t)
	sqlite3 := testtool.Program(t, "sqlite3")
	stdbuf := testtool.Program(t, "stdbuf")
	c := &s3ShellClient{t: t, stderr: &testtool.Buffer{}}
	c.cmd = exec.Command(stdbuf, "-oL", sqlite3, "-batch", "-noheader")
	c.cmd.Dir = dir
	c.cmd.Stderr = c.stderr
	stdin, err := c.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.stdin, c.closer = stdin, stdin.Close
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.out = testtool.ReadLines(stdout)
	t.Cleanup(c.close)
	fmt.Fprintf(c.stdin, ".load %s\n.open '%s'\n", ext, uri)
	return c
}

func s3OpenShell(t *testing.T, dir, uri string) s3Client {
	t.Helper()
	c := s3StartShell(t, dir, uri)
	// Only walrust answers this: after a failed .open the shell goes on
	// with an empty in-memory database, which ignores the PRAGMA.
	if _, err := c.query("PRAGMA walrust_txid"); err != nil {
		t.Fatalf("open %s: %v", uri, err)
	}
	return c
}

// query sends q and a marker; an answer that is only the marker means q
// failed (its error is on stderr).
func (c *s3ShellClient) query(q string) (string, error) {
	c.t.Helper()
	before := len(c.stderr.String())
	fmt.Fprintf(c.stdin, "%s;\nSELECT '%s';\n", q, s3ShellEnd)
	var lines []string
	for {
		l := c.out.Next(c.t, c.stderr)
		if l == s3ShellEnd {
			break
		}
		lines = append(lines, l)
	}
	if len(lines) != 1 {
		return "", fmt.Errorf("%s: %q; stderr: %s", q, lines, c.stderr.String()[before:])
	}
	return lines[0], nil
}

// close ends the shell (and its follower) and waits for it to exit.
func (c *s3ShellClient) close() {
	if c.closer == nil {
		return
	}
	c.closer()
	c.closer = nil
	c.cmd.Wait()
	c.out.Drain()
}

func s3MustQuery(t *testing.T, c s3Client, q string) string {
	t.Helper()
	s, err := c.query(q)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func s3ClientStatus(t *testing.T, c s3Client) s3Status {
	t.Helper()
	return parseS3Status(t, s3MustQuery(t, c, "PRAGMA walrust_status"))
}

// waitCaughtUp waits until the replica serves the primary's TXID and rows.
func (w *s3World) waitCaughtUp(c s3Client, what string) {
	w.t.Helper()
	want := w.want()
	testtool.Eventually(w.t, what+": the replica to catch up", 15*time.Second, func() error {
		got, err := s3Probe(c)
		if err == nil && got != want {
			err = fmt.Errorf("replica answers %q; want %q (TXID|rows)", got, want)
		}
		return err
	})
}

// mark is how many requests the server has logged so far.
func (w *s3World) mark() int { return len(w.srv.Requests()) }

// readsOnce are reads(mark) once at least want GETs are logged, or after
// 3 s: versitygw logs a request once its response is sent, which can be
// after the client is done with it.
func (w *s3World) readsOnce(mark, want int) (lists int, gets []string) {
	deadline := time.Now().Add(3 * time.Second)
	for {
		lists, gets = w.reads(mark)
		if len(gets) >= want || time.Now().After(deadline) {
			return lists, gets
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// reads are the LIST requests and the paths of the GET requests (sorted)
// that the server logged since mark: the replica's, since the publisher only
// PUTs and DELETEs.
func (w *s3World) reads(mark int) (lists int, gets []string) {
	for _, r := range w.srv.Requests()[mark:] {
		switch r.Kind {
		case "LIST":
			lists++
		case "GET", "HEAD":
			gets = append(gets, r.Path)
		}
	}
	slices.Sort(gets) // files are fetched in parallel
	return lists, gets
}

func s3SnapshotGets(gets []string) int {
	n := 0
	for _, p := range gets {
		if strings.Contains(p, "/"+s3Prefix+"/0009/") {
			n++
		}
	}
	return n
}

// paths are the request paths of files, sorted, as reads reports them.
func (w *s3World) paths(files ...store.FileInfo) string {
	var p []string
	for _, fi := range files {
		p = append(p, fmt.Sprintf("/%s/%s/%04x/%s", s3Bucket, s3Prefix, fi.Level, fi.Name()))
	}
	slices.Sort(p)
	return strings.Join(p, " ")
}
