package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// TestSQLiteShell drives the real sqlite3 shell: .load the extension, .open
// a replica by URI, and watch rows arrive while the store grows.
func TestSQLiteShell(t *testing.T) {
	ext := testtool.Extension(t)
	sqlite3 := testtool.Program(t, "sqlite3")
	stdbuf := testtool.Program(t, "stdbuf")
	e := newWorld(t, 4096, false)

	var stderr testtool.Buffer
	cmd := exec.Command(stdbuf, "-oL", sqlite3, "-batch", "-noheader")
	cmd.Stderr = &stderr
	stdin, stdout := testtool.StartPiped(t, cmd)
	defer cmd.Wait()
	defer stdin.Close()
	out := testtool.ReadLines(stdout)
	fmt.Fprintf(stdin, ".load %s\n.open '%s'\n", ext, e.followURI(""))

	query := func(q string) string {
		fmt.Fprintln(stdin, q)
		return out.Next(t, &stderr)
	}
	for i := 1; i <= 5; i++ {
		e.Ref.Exec("INSERT INTO t (v) VALUES (?)", strings.Repeat("x", 3000)) // overflow pages too
		e.Commit()
		eventually(t, fmt.Sprintf("row %d", i), func() error {
			if n := query("SELECT count(*) FROM t;"); n != fmt.Sprint(i) {
				return fmt.Errorf("%s rows; stderr:\n%s", n, &stderr)
			}
			return nil
		})
	}
	if got := query("PRAGMA walrust_txid;"); got != "6" {
		t.Fatalf("walrust_txid = %q, want 6", got)
	}
	if got := query("PRAGMA walrust_status;"); !strings.Contains(got, `"txid":6`) || !strings.Contains(got, `"files_applied":6`) {
		t.Fatalf("walrust_status = %s", got)
	}
	fmt.Fprintln(stdin, "INSERT INTO t (v) VALUES ('no');")
	fmt.Fprintln(stdin, "SELECT 'after insert';")
	if got := out.Next(t, &stderr); got != "after insert" {
		t.Fatalf("unexpected output %q", got)
	}
	waitFor(t, "a read-only error", func() (bool, error) { return strings.Contains(stderr.String(), "readonly"), nil })
	if !strings.Contains(stderr.String(), "readonly") {
		t.Fatalf("write did not fail with a read-only error; stderr:\n%s", &stderr)
	}
}

const pythonFollower = `
import sqlite3, sys, time
ext, uri, want = sys.argv[1], sys.argv[2], int(sys.argv[3])
loader = sqlite3.connect(":memory:")
loader.enable_load_extension(True)
loader.load_extension(ext)
db = sqlite3.connect(uri, uri=True)
last = None
deadline = time.time() + 30
while time.time() < deadline:
    n = db.execute("SELECT count(*) FROM t").fetchone()[0]
    if n != last:
        print(n, flush=True)
        last = n
    if n >= want:
        sys.exit(0)
    time.sleep(0.02)
sys.exit("timed out at %r rows" % last)
`

// TestPython drives Debian's /usr/bin/python3 (the pyenv build first on PATH
// cannot load extensions): load the extension on one connection, open the
// replica by URI on another, and watch rows arrive.
func TestPython(t *testing.T) {
	ext := testtool.Extension(t)
	python := testtool.Program(t, "/usr/bin/python3")
	e := newWorld(t, 4096, false)
	const rows = 5

	var stderr testtool.Buffer
	cmd := exec.Command(python, "-c", pythonFollower, ext, e.followURI(""), fmt.Sprint(rows))
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := testtool.ReadLines(stdout)
	if got := out.Next(t, &stderr); got != "0" {
		t.Fatalf("first count %q, want 0", got)
	}
	for i := 1; i <= rows; i++ {
		e.Ref.Exec("INSERT INTO t (v) VALUES (?)", fmt.Sprint("row ", i))
		e.Commit()
		if got := out.Next(t, &stderr); got != fmt.Sprint(i) {
			t.Fatalf("python saw %q, want %d", got, i)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("python: %v; stderr:\n%s", err, &stderr)
	}
}

// TestLoadAgainBySQL loads the extension with .load, then again with SQL's
// load_extension() on the same connection: SQLite will not replace a
// function while a statement runs, and the second load must take the
// functions the first one registered instead of failing.
func TestLoadAgainBySQL(t *testing.T) {
	ext := testtool.Extension(t)
	sqlite3 := testtool.Program(t, "sqlite3")
	out, err := exec.Command(sqlite3, "-batch", ":memory:",
		".load "+ext,
		fmt.Sprintf("SELECT load_extension('%s') IS NULL;", ext),
		"SELECT walrust_version() != '';").CombinedOutput()
	if got := strings.TrimSpace(string(out)); err != nil || got != "1\n1" {
		t.Fatalf("loading twice: %v\n%s", err, out)
	}
}
