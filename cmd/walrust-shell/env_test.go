package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/walrust/walrust/vfs/publish"
	"github.com/walrust/walrust/vfs/store"
)

// shellBin is the walrust-shell binary built once for the tests.
var shellBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "walrust-shell-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	shellBin = filepath.Join(dir, "walrust-shell")
	args := []string{"build", "-o", shellBin}
	if ov := os.Getenv("WALRUST_TEST_OVERLAY"); ov != "" {
		args = append(args, "-overlay", ov)
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "build walrust-shell: %v\n", err)
		return 1
	}
	return m.Run()
}

// env is one test's primary database, published to a file store with
// walrust's publisher, and the path of the replica the shell keeps.
type env struct {
	t        *testing.T
	dir      string
	storeDir string
	primary  *sql.DB
	pub      *publish.Publisher
	replica  string
	home     string // HOME for the shell (its history file goes here)
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{
		t: t, dir: dir,
		storeDir: filepath.Join(dir, "store"),
		replica:  filepath.Join(dir, "replica.db"),
		home:     filepath.Join(dir, "home"),
	}
	for _, d := range []string{e.storeDir, e.home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	primPath := filepath.Join(dir, "primary.db")
	db, err := sql.Open("sqlite3", primPath+"?_journal_mode=DELETE")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	e.primary = db
	st, err := store.OpenFile(e.storeDir)
	if err != nil {
		t.Fatal(err)
	}
	e.exec(`PRAGMA page_size=4096`)
	e.exec(`CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL, avatar BLOB)`)
	e.exec(`CREATE INDEX users_name ON users(name)`)
	e.exec(`CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), total INTEGER)`)
	e.exec(`CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100`)
	e.exec(`INSERT INTO users VALUES (1, 'ada', 9.5, x'00ff10'), (2, 'grace', NULL, NULL), (3, 'linus', 7.0, randomblob(100))`)
	e.exec(`INSERT INTO orders VALUES (1, 1, 250), (2, 2, 40), (3, 1, 1200)`)
	e.pub, err = publish.New(primPath, st, publish.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.pub.Close() })
	e.publish()
	return e
}

func (e *env) exec(q string, args ...any) {
	e.t.Helper()
	if _, err := e.primary.Exec(q, args...); err != nil {
		e.t.Fatalf("primary: %s: %v", q, err)
	}
}

// publish publishes the primary's changes as the next TXID.
func (e *env) publish() {
	e.t.Helper()
	if _, err := e.pub.PublishOnce(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) source() string { return "file://" + e.storeDir }

// result is one run of the shell.
type result struct {
	stdout, stderr string
	code           int
}

// run runs the shell with args and stdin, as a user would.
func (e *env) run(stdin string, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, shellBin, args...)
	cmd.Env = append(os.Environ(), "HOME="+e.home, "WALRUST_LOG=warn")
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := result{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		res.code = exit.ExitCode()
	case err != nil:
		e.t.Fatalf("run walrust-shell %q: %v", args, err)
	}
	return res
}

// query runs -c SQL against the replica (bootstrapping it on first use).
func (e *env) query(sql string, extra ...string) result {
	e.t.Helper()
	return e.run("", append([]string{e.source(), "--local", e.replica, "--interval", "20ms", "-c", sql}, extra...)...)
}
