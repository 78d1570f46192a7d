package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/walrust/walrust/vfs/testkit/testtool"
)

func wantOK(t *testing.T, r result) {
	t.Helper()
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr:\n%s\nstdout:\n%s", r.code, r.stderr, r.stdout)
	}
}

func wantOutput(t *testing.T, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", got, want)
	}
}

func TestQueryPrintsAlignedColumns(t *testing.T) {
	e := newEnv(t)
	r := e.query("SELECT id, name, score, avatar, length(avatar) AS len FROM users ORDER BY id")
	wantOK(t, r)
	lines := strings.Split(r.stdout, "\n")
	if len(lines) != 6 {
		t.Fatalf("got %d lines:\n%s", len(lines), r.stdout)
	}
	// The avatar column is as wide as the cut 100-byte blob:
	// x' + 64 hex digits + ...' (100 bytes) = 82 characters.
	const w = 82
	wantOutput(t, strings.Join(lines[:4], "\n")+"\n", ""+
		fmt.Sprintf("id  name   score  %-*s   len\n", w, "avatar")+
		fmt.Sprintf("--  -----  -----  %s  ----\n", strings.Repeat("-", w))+
		fmt.Sprintf(" 1  ada      9.5  %-*s     3\n", w, "x'00ff10'")+
		fmt.Sprintf(" 2  grace   NULL  %-*s  NULL\n", w, "NULL"))
	// The 100-byte random blob is cut after 32 bytes.
	if !strings.HasPrefix(lines[4], " 3  linus    7.0  x'") || !strings.HasSuffix(lines[4], "...' (100 bytes)   100") {
		t.Errorf("blob row: %q", lines[4])
	}
}

func TestQueryFlagsAfterSourceAndBefore(t *testing.T) {
	e := newEnv(t)
	r := e.run("", "--local", e.replica, "-c", "SELECT count(*) AS n FROM orders", "--interval", "50ms", e.source(), "--timeout", "10s")
	wantOK(t, r)
	wantOutput(t, r.stdout, "n\n-\n3\n")
}

func TestPipedStatements(t *testing.T) {
	e := newEnv(t)
	in := "SELECT 1 AS one; SELECT 'a;b' AS \"x;y\";\n" +
		"-- a comment; with a semicolon\n" +
		"SELECT name\n  FROM users\n  WHERE id = 2;   SELECT\n" +
		"/* block; comment */ total FROM orders WHERE id = 3\n" +
		";\n" +
		";;\n" +
		"SELECT name FROM users WHERE id = 1" // no final ';' nor newline
	r := e.run(in, e.source(), "--local", e.replica)
	wantOK(t, r)
	wantOutput(t, r.stdout, ""+
		"one\n---\n  1\n"+
		"x;y\n---\na;b\n"+
		"name\n-----\ngrace\n"+
		"total\n-----\n 1200\n"+
		"name\n----\nada\n")
}

func TestPipedErrorsDoNotStopButFail(t *testing.T) {
	e := newEnv(t)
	in := "SELECT 1 AS a;\nSELECT *\nFROM nope;\nSELECT 2 AS b;\n"
	r := e.run(in, e.source(), "--local", e.replica)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	wantOutput(t, r.stdout, "a\n-\n1\nb\n-\n2\n")
	if want := "Error (line 2): no such table: nope\n"; r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}

	r = e.run(in, e.source(), "--local", e.replica, "--bail")
	if r.code != 1 || r.stdout != "a\n-\n1\n" {
		t.Errorf("--bail: exit %d, stdout %q; want 1 and only the first result", r.code, r.stdout)
	}
}

func TestCommandStopsAtFirstError(t *testing.T) {
	e := newEnv(t)
	r := e.query("SELECT 1 AS a; SELECT x FROM nope; SELECT 2 AS b")
	if r.code != 1 || r.stdout != "a\n-\n1\n" || r.stderr != "Error: no such table: nope\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestWriteFailsReadOnly(t *testing.T) {
	e := newEnv(t)
	for _, q := range []string{
		"INSERT INTO users (name) VALUES ('eve')",
		"DELETE FROM orders",
		"CREATE TABLE t2 (x)",
	} {
		r := e.query(q)
		if r.code != 1 {
			t.Errorf("%s: exit %d, want 1", q, r.code)
		}
		if !strings.Contains(r.stderr, "attempt to write a readonly database") || !strings.Contains(r.stderr, "read-only") {
			t.Errorf("%s: stderr %q does not explain the replica is read-only", q, r.stderr)
		}
	}
	r := e.query("SELECT count(*) AS n FROM users")
	wantOK(t, r)
	wantOutput(t, r.stdout, "n\n-\n3\n")
	for _, suffix := range []string{"-journal", "-wal", "-shm"} {
		if _, err := os.Stat(e.replica + suffix); err == nil {
			t.Errorf("%s exists", e.replica+suffix)
		}
	}
}

func TestDotTablesAndSchema(t *testing.T) {
	e := newEnv(t)
	r := e.query(".tables")
	wantOK(t, r)
	wantOutput(t, r.stdout, "big_orders  orders      users\n")

	r = e.query(".tables user%")
	wantOK(t, r)
	wantOutput(t, r.stdout, "users\n")

	r = e.query(".schema users")
	wantOK(t, r)
	wantOutput(t, r.stdout, ""+
		"CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL, avatar BLOB);\n"+
		"CREATE INDEX users_name ON users(name);\n")

	r = e.query(".schema")
	wantOK(t, r)
	for _, want := range []string{"CREATE TABLE users", "CREATE INDEX users_name", "CREATE TABLE orders", "CREATE VIEW big_orders"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf(".schema lacks %q:\n%s", want, r.stdout)
		}
	}

	r = e.query(".schema nosuch")
	if r.code != 1 || !strings.Contains(r.stderr, "nosuch") {
		t.Errorf(".schema nosuch: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestDotStatus(t *testing.T) {
	e := newEnv(t)
	r := e.query(".status")
	wantOK(t, r)
	var st map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf(".status is not JSON: %v\n%s", err, r.stdout)
	}
	for _, field := range []string{"source", "path", "txid", "timestamp", "lag_seconds", "last_error", "interval", "store"} {
		if _, ok := st[field]; !ok {
			t.Errorf(".status lacks %q:\n%s", field, r.stdout)
		}
	}
	if st["source"] != e.source() || st["txid"] != 1.0 {
		t.Errorf("source %v, txid %v; want %s, 1", st["source"], st["txid"], e.source())
	}
	if !strings.Contains(r.stdout, "\n  \"txid\": 1") {
		t.Errorf(".status is not indented:\n%s", r.stdout)
	}
}

func TestDotHelpQuitAndUnknown(t *testing.T) {
	e := newEnv(t)
	r := e.query(".help")
	wantOK(t, r)
	for _, cmd := range []string{".status", ".tables", ".schema", ".help", ".quit", ".exit"} {
		if !strings.Contains(r.stdout, cmd) {
			t.Errorf(".help lacks %s", cmd)
		}
	}

	r = e.run(".frobnicate\nSELECT 1 AS a;\n", "--local", e.replica, e.source())
	if r.code != 1 || r.stdout != "a\n-\n1\n" || !strings.Contains(r.stderr, "unknown command: .frobnicate") {
		t.Errorf("unknown command: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	r = e.run("SELECT 1 AS a;\n.quit\nSELECT 2 AS b;\n", "--local", e.replica, e.source())
	wantOK(t, r)
	wantOutput(t, r.stdout, "a\n-\n1\n")

	r = e.run(".exit 3\n", "--local", e.replica, e.source())
	if r.code != 3 {
		t.Errorf(".exit 3: exit %d", r.code)
	}
}

func TestReopenWithoutSource(t *testing.T) {
	e := newEnv(t)
	wantOK(t, e.query("SELECT 1"))

	e.exec("INSERT INTO orders VALUES (4, 2, 99)")
	e.publish()
	// No SOURCE: the replica's state file names it. The reopened replica
	// serves what it has at once and catches up in the background, so a
	// later run sees the new transaction.
	testtool.EventuallyEvery(t, "the replica to reach TXID 2", 10*time.Second, 50*time.Millisecond, func() error {
		r := e.run("PRAGMA walrust_txid; SELECT count(*) AS n FROM orders;", "--local", e.replica, "--interval", "20ms")
		wantOK(t, r)
		if r.stdout != "walrust_txid\n------------\n2\nn\n-\n4\n" {
			return fmt.Errorf("output:\n%s", r.stdout)
		}
		return nil
	})

	r := e.run("", "--local", e.replica, "-c", ".status")
	wantOK(t, r)
	if !strings.Contains(r.stdout, `"source": "`+e.source()+`"`) {
		t.Errorf("reopened replica's status does not name the source:\n%s", r.stdout)
	}

	// Another source than the one the replica follows is refused.
	r = e.run("", "file://"+t.TempDir(), "--local", e.replica, "-c", "SELECT 1")
	if r.code != 1 || !strings.Contains(r.stderr, "open replica") {
		t.Errorf("other source: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestSeesNewTransactions keeps one shell open on a pipe and checks that
// it sees transactions published while it runs.
func TestSeesNewTransactions(t *testing.T) {
	e := newEnv(t)
	cmd := exec.Command(shellBin, e.source(), "--local", e.replica, "--interval", "20ms")
	cmd.Env = append(os.Environ(), "HOME="+e.home)
	var stderr testtool.Buffer
	cmd.Stderr = &stderr
	stdin, stdout := testtool.StartPiped(t, cmd)
	defer cmd.Process.Kill()
	out := bufio.NewReader(stdout)
	count := func() string {
		t.Helper()
		if _, err := io.WriteString(stdin, "SELECT count(*) AS n FROM orders;\n"); err != nil {
			t.Fatal(err)
		}
		var lines [3]string
		for i := range lines {
			l, err := out.ReadString('\n')
			if err != nil {
				t.Fatalf("read shell output: %v (stderr %q)", err, stderr.String())
			}
			lines[i] = strings.TrimSpace(l)
		}
		return lines[2]
	}
	if n := count(); n != "3" {
		t.Fatalf("count %s, want 3", n)
	}
	for i := 4; i <= 6; i++ {
		e.exec("INSERT INTO orders VALUES (?, 1, 10)", i)
		e.publish()
		testtool.Eventually(t, fmt.Sprintf("count %d", i), 10*time.Second, func() error {
			if n := count(); n != fmt.Sprint(i) {
				return fmt.Errorf("count %s", n)
			}
			return nil
		})
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("shell: %v, stderr %q", err, stderr.String())
	}
}

func TestUsage(t *testing.T) {
	e := newEnv(t)
	for _, args := range [][]string{
		{},
		{e.source()},           // no --local
		{"--local", e.replica}, // no SOURCE and no replica yet
		{"--bogus", "--local", e.replica, e.source()},
		{e.source(), "another", "--local", e.replica},
		{"not-a-url", "--local", e.replica},
		{e.source(), "--local", e.replica, "--interval", "soon"},
		{e.source(), "--local", e.replica, "--timeout", "-1s"},
		{e.source(), "--local", e.replica, "--interval", "1ms"},
		{e.source(), "--local"},
	} {
		r := e.run("", args...)
		if r.code != 2 || !strings.Contains(r.stderr, "Usage:") || r.stdout != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 and usage on stderr", args, r.code, r.stdout, r.stderr)
		}
	}
	for _, flag := range []string{"--help", "-h", "-help"} {
		r := e.run("", flag)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") || !strings.Contains(r.stdout, "--local") {
			t.Errorf("%s: exit %d, stdout %q", flag, r.code, r.stdout)
		}
	}
	if _, err := os.Stat(e.replica); err == nil {
		t.Errorf("bad usage created %s", e.replica)
	}
}
