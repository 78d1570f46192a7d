package e2e

import (
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// pythonDefaultVFS loads the extension on a throwaway connection, then
// uses plain paths only, as sqlite3.connect(path) does: an ordinary WAL
// database (if named) written and read, a missing path opened read-only
// (if named), a write to the replica, then the replica's row count each
// time it changes, until it reaches want. Then, with an ordinary database,
// one more write to it, and it waits for a line on stdin before it exits,
// so that the test can read that database from another process while this
// one has it open.
const pythonDefaultVFS = `
import sqlite3, sys, time
ext, replica, other, missing, want = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
c = sqlite3.connect(":memory:")
c.enable_load_extension(True)
c.load_extension(ext)
c.close()
if other:
    o = sqlite3.connect(other)
    print("journal_mode", o.execute("PRAGMA journal_mode=wal").fetchone()[0], flush=True)
    o.execute("CREATE TABLE w (x)")
    o.executemany("INSERT INTO w VALUES (?)", [(1,), (2,), (3,)])
    o.commit()
    print("sum", o.execute("SELECT sum(x) FROM w").fetchone()[0], flush=True)
if missing:
    try:
        sqlite3.connect("file:" + missing + "?mode=ro", uri=True).execute("SELECT 1")
        print("missing opened", flush=True)
    except sqlite3.OperationalError as e:
        print("missing failed", flush=True)
db = sqlite3.connect(replica)
try:
    db.execute("INSERT INTO t (v) VALUES ('x')")
    db.commit()
    print("write succeeded", flush=True)
except sqlite3.OperationalError as e:
    print("write failed:", e, flush=True)
    db.rollback()  # the failed INSERT left python's implicit BEGIN open
last = None
deadline = time.time() + 30
while True:
    n = db.execute("SELECT count(*) FROM t").fetchone()[0]
    if n != last:
        print(n, flush=True)
        last = n
    if n >= want:
        break
    if time.time() > deadline:
        sys.exit("timed out at %r rows" % last)
    time.sleep(0.02)
if other:
    o.execute("INSERT INTO w VALUES (4)")
    o.commit()
    print("sum", o.execute("SELECT sum(x) FROM w").fetchone()[0], flush=True)
    sys.stdin.readline()
`

// TestDefaultVFSPython: with WALRUST_DEFAULT_VFS=1, Debian's python3
// opens a replica by its plain path (WALRUST_REPLICAS maps it to the
// store) and follows the store, while in the same process an ordinary WAL
// database keeps working, readable by the sqlite3 shell; a missing path
// opened read-only fails and is not created, and a write to the replica
// fails read-only. Then, with no mapping, the replica is found by its
// state file and still follows.
func TestDefaultVFSPython(t *testing.T) {
	ext := testtool.Extension(t)
	python := testtool.Program(t, "/usr/bin/python3")
	testtool.Program(t, "sqlite3")
	e := newWorld(t, 4096, false)
	other := filepath.Join(e.Dir, "other.db")
	missing := filepath.Join(e.Dir, "missing.db")
	const rows = 3
	env := append(os.Environ(), "WALRUST_DEFAULT_VFS=1", "WALRUST_INTERVAL=20ms")

	run := func(t *testing.T, env []string, other, missing string, want int) *scriptClient {
		t.Helper()
		cmd := exec.Command(python, "-c", pythonDefaultVFS, ext, e.Path, other, missing, fmt.Sprint(want))
		cmd.Env = env
		return startClient(t, "python", cmd)
	}

	t.Run("mapped", func(t *testing.T) {
		c := run(t, append(env, "WALRUST_REPLICAS="+e.Path+"="+e.Source), other, missing, rows)
		c.expect(t, "journal_mode wal")
		c.expect(t, "sum 6")
		c.expect(t, "missing failed")
		c.followWhileWriting(t, e, other, rows)
		if _, err := os.Stat(missing); err == nil {
			t.Errorf("the read-only open of a missing path created %s", missing)
		}
	})

	t.Run("state file", func(t *testing.T) {
		if _, err := os.Stat(e.Path + "-replica-state"); err != nil {
			t.Fatalf("the mapped run made no replica: %v", err)
		}
		c := run(t, env, "", "", rows+1)
		defer c.stdin.Close()
		c.expect(t, "write failed: attempt to write a readonly database")
		c.expect(t, fmt.Sprint(rows))
		e.Ref.Exec("INSERT INTO t (v) VALUES ('one more')")
		e.Commit()
		c.expect(t, fmt.Sprint(rows+1))
		if err := c.cmd.Wait(); err != nil {
			t.Fatalf("python: %v; stderr:\n%s", err, c.stderr)
		}
	})

	t.Run("mapping without default", func(t *testing.T) {
		sqlite3 := testtool.Program(t, "sqlite3")
		cmd := exec.Command(sqlite3, "-batch", ":memory:", ".load "+ext, "SELECT 1;")
		cmd.Env = append(os.Environ(), "WALRUST_REPLICAS="+e.Path+"="+e.Source)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "WALRUST_REPLICAS is set but WALRUST_DEFAULT_VFS is not 1") {
			t.Fatalf("a mapping without WALRUST_DEFAULT_VFS=1 loaded without a warning: %v, output:\n%s", err, out)
		}
	})

	t.Run("bad mapping", func(t *testing.T) {
		cmd := exec.Command(python, "-c", pythonDefaultVFS, ext, e.Path, "", "", "0")
		cmd.Env = append(env, "WALRUST_REPLICAS=replica.db="+e.Source)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), `WALRUST_REPLICAS: "replica.db" is not an absolute path`) {
			t.Fatalf("a relative path in WALRUST_REPLICAS: %v, output:\n%s", err, out)
		}
	})
}

// scriptClient is a client process running a default-VFS script
// (pythonDefaultVFS, nodeDefaultVFS), which prints a line per step.
type scriptClient struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *testtool.Lines
	stderr *testtool.Buffer
}

func startClient(t *testing.T, name string, cmd *exec.Cmd) *scriptClient {
	t.Helper()
	c := &scriptClient{name: name, cmd: cmd, stderr: &testtool.Buffer{}}
	cmd.Stderr = c.stderr
	var stdout io.Reader
	c.stdin, stdout = testtool.StartPiped(t, cmd)
	t.Cleanup(func() { cmd.Process.Kill() })
	c.out = testtool.ReadLines(stdout)
	return c
}

func (c *scriptClient) expect(t *testing.T, want string) {
	t.Helper()
	if got := c.out.Next(t, c.stderr); got != want {
		t.Fatalf("%s said %q, want %q; stderr:\n%s", c.name, got, want, c.stderr)
	}
}

// followWhileWriting checks the script from its write to the replica on:
// the write fails read-only, the replica follows rows commits from 0,
// and the ordinary database other, which the script holds open in WAL
// mode and writes once more, is read by the sqlite3 shell through its
// -wal and -shm files. Then the script is told to exit.
func (c *scriptClient) followWhileWriting(t *testing.T, e *world, other string, rows int) {
	t.Helper()
	if got := c.out.Next(t, c.stderr); !strings.HasPrefix(got, "write failed:") || !strings.Contains(got, "readonly") {
		t.Fatalf("write to the replica: %q, want a read-only failure", got)
	}
	c.expect(t, "0")
	for i := 1; i <= rows; i++ {
		e.Ref.Exec("INSERT INTO t (v) VALUES (?)", fmt.Sprint("row ", i))
		e.Commit()
		c.expect(t, fmt.Sprint(i))
	}
	c.expect(t, "sum 10")
	if _, err := os.Stat(other + "-wal"); err != nil {
		t.Errorf("no WAL file while %s has the database open: %v", c.name, err)
	}
	got, err := exec.Command(testtool.Program(t, "sqlite3"), other, "SELECT sum(x) FROM w").CombinedOutput()
	if err != nil || strings.TrimSpace(string(got)) != "10" {
		t.Errorf("sqlite3 read %q (%v), want 10", got, err)
	}
	c.stdin.Close()
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("%s: %v; stderr:\n%s", c.name, err, c.stderr)
	}
}

// linkedChildEnv, set, makes the test binary run defaultVFSLinkedChild
// after vfs.Register instead of the tests: a Go program with the VFS
// linked in, started with WALRUST_DEFAULT_VFS=1. Its value is the
// replica's path and an ordinary database's, separated by a newline.
const linkedChildEnv = "WALRUST_E2E_DEFAULT_VFS_CHILD"

// defaultVFSLinkedChild opens both databases by plain path through
// mattn/go-sqlite3 and prints the replica's row count, what a write to it
// returned, and what the ordinary database, in WAL mode, read back.
func defaultVFSLinkedChild() int {
	replica, other, _ := strings.Cut(os.Getenv(linkedChildEnv), "\n")
	db, err := sql.Open("sqlite3", replica)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer db.Close()
	n, err := count(db)
	if err != nil {
		fmt.Println("count:", err)
		return 1
	}
	_, werr := db.Exec("INSERT INTO t (v) VALUES ('x')")
	o, err := sql.Open("sqlite3", other)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer o.Close()
	var mode string
	var sum int
	for _, q := range []string{"CREATE TABLE w (x)", "INSERT INTO w VALUES (3), (4)"} {
		if _, err := o.Exec(q); err != nil {
			fmt.Println(q, err)
			return 1
		}
	}
	if err := o.QueryRow("PRAGMA journal_mode=wal").Scan(&mode); err != nil {
		fmt.Println("journal_mode:", err)
		return 1
	}
	if err := o.QueryRow("SELECT sum(x) FROM w").Scan(&sum); err != nil {
		fmt.Println("sum:", err)
		return 1
	}
	fmt.Printf("rows %d; write: %v; %s sum %d\n", n, werr, mode, sum)
	return 0
}

// TestDefaultVFSLinked: WALRUST_DEFAULT_VFS=1 at vfs.Register in a Go
// program makes plain paths opened through mattn/go-sqlite3 reach the
// mapped replica, read-only, and every other database the default VFS.
func TestDefaultVFSLinked(t *testing.T) {
	e := newWorld(t, 4096, false)
	e.Ref.Exec("INSERT INTO t (v) VALUES ('a'), ('b')")
	e.Commit()
	other := filepath.Join(e.Dir, "other.db")
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), linkedChildEnv+"="+e.Path+"\n"+other,
		"WALRUST_DEFAULT_VFS=1", "WALRUST_REPLICAS="+e.Path+"="+e.Source)
	out, err := cmd.CombinedOutput()
	want := "rows 2; write: attempt to write a readonly database; wal sum 7"
	if err != nil || strings.TrimSpace(string(out)) != want {
		t.Fatalf("linked program: %v, output:\n%s\nwant %q", err, out, want)
	}
}
