package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// The README's "Security" section, where users meet it: the sqlite3 shell
// and Python, each running SQL it does not trust.

// secClientEnv is a store with a snapshot, a plain database to open
// read-only, an empty writable directory, and a second store walrust must
// not follow once WALRUST_SOURCES names only the first.
type secClientEnv struct {
	*world
	other    string // another store, a copy of the first
	writable string // an empty directory SQL names for new replicas
	env      []string
}

func newSecClientEnv(t *testing.T) *secClientEnv {
	e := &secClientEnv{world: newWorld(t, 4096, false)}
	e.Ref.Insert(3)
	e.Commit()
	e.other = filepath.Join(e.Dir, "other-store")
	if err := os.CopyFS(e.other, os.DirFS(e.StoreDir)); err != nil {
		t.Fatal(err)
	}
	e.writable = filepath.Join(e.Dir, "writable")
	if err := os.Mkdir(e.writable, 0o755); err != nil {
		t.Fatal(err)
	}
	e.env = append(os.Environ(), "WALRUST_SOURCES="+e.Source)
	return e
}

// replicaURI names a replica in the writable directory.
// runPython runs script in python3 with this environment and returns what
// it printed on stdout and stderr; a script that fails fails the test,
// showing its stderr.
func (e *secClientEnv) runPython(t *testing.T, python, script string, args ...string) (out []byte, stderr *testtool.Buffer) {
	t.Helper()
	cmd := exec.Command(python, append([]string{"-c", script}, args...)...)
	cmd.Env = e.env
	stderr = &testtool.Buffer{}
	cmd.Stderr = stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v; stderr:\n%s", err, stderr)
	}
	return out, stderr
}

func (e *secClientEnv) replicaURI(name, params string) string {
	return "file:" + filepath.Join(e.writable, name) + "?vfs=walrust&interval=20ms" + params
}

// TestUntrustedSQLShell: in the sqlite3 shell, an ATTACH on a read-only
// database creates no replica, and with WALRUST_SOURCES set SQL can follow
// only the stores it lists, with no endpoint of its choosing.
func TestUntrustedSQLShell(t *testing.T) {
	ext := testtool.Extension(t)
	sqlite3 := testtool.Program(t, "sqlite3")
	e := newSecClientEnv(t)
	run := func(args []string, script string) string {
		t.Helper()
		cmd := exec.Command(sqlite3, args...)
		cmd.Env = e.env
		cmd.Stdin = strings.NewReader(".load " + ext + "\n" + script)
		out, _ := cmd.CombinedOutput() // a failed statement makes the exit status non-zero
		return string(out)
	}

	out := run([]string{"-readonly", e.Ref.Path}, "ATTACH '"+e.replicaURI("new.db", "&source="+e.Source)+"' AS r;\n"+
		"SELECT 'attached', count(*) FROM r.t;\n")
	if strings.Contains(out, "attached") || !strings.Contains(out, "unable to open database") {
		t.Fatalf("ATTACH on a read-only database:\n%s", out)
	}
	checkEmptyDir(t, e.writable)

	for _, params := range []string{
		"&source=file://" + e.other,
		"&source=" + e.Source + "&endpoint=http://127.0.0.1:9",
	} {
		out := run(nil, ".open '"+e.replicaURI("x.db", params)+"'\nSELECT 'opened', count(*) FROM t;\n")
		if strings.Contains(out, "opened") || !strings.Contains(out, "not in WALRUST_SOURCES") && !strings.Contains(out, "is not allowed") {
			t.Fatalf("open with %s under WALRUST_SOURCES:\n%s", params, out)
		}
	}
	checkEmptyDir(t, e.writable)

	out = run(nil, ".open '"+e.replicaURI("x.db", "&source="+e.Source)+"'\nSELECT 'opened', count(*) FROM t;\n")
	if !strings.Contains(out, "opened|3") {
		t.Fatalf("open of a listed source:\n%s", out)
	}
}

// pythonUntrusted runs the README's advice for applications that run SQL
// they do not trust, and what SQL can still try.
const pythonUntrusted = `
import sqlite3, sys
ext, plain, new_uri, outside_uri, endpoint_uri, inside_uri = sys.argv[1:]
loader = sqlite3.connect(":memory:")
loader.enable_load_extension(True)
loader.load_extension(ext)

def attempt(what, fn):
    try:
        print(what, "ok", fn(), flush=True)
    except Exception as e:
        print(what, "error", e, flush=True)

attempt("ro-open", lambda: sqlite3.connect(new_uri + "&mode=ro", uri=True).execute("SELECT count(*) FROM t").fetchone()[0])
ro = sqlite3.connect("file:" + plain + "?mode=ro", uri=True)
attempt("ro-attach", lambda: ro.execute("ATTACH ? AS r", (new_uri + "&mode=ro",)).fetchall())
attempt("outside", lambda: sqlite3.connect(outside_uri, uri=True).execute("SELECT count(*) FROM t").fetchone()[0])
attempt("endpoint", lambda: sqlite3.connect(endpoint_uri, uri=True).execute("SELECT count(*) FROM t").fetchone()[0])
attempt("inside", lambda: sqlite3.connect(inside_uri, uri=True).execute("SELECT count(*) FROM t").fetchone()[0])

# The SQLite side of the advice: no ATTACH at all.
def no_attach(action, *args):
    return sqlite3.SQLITE_DENY if action == sqlite3.SQLITE_ATTACH else sqlite3.SQLITE_OK
guarded = sqlite3.connect(":memory:")
guarded.set_authorizer(no_attach)
attempt("authorizer", lambda: guarded.execute("ATTACH ? AS r", (inside_uri,)).fetchall())
limited = sqlite3.connect(":memory:")
limited.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
attempt("limit", lambda: limited.execute("ATTACH ? AS r", (inside_uri,)).fetchall())
`

// TestUntrustedSQLPython: the same from Debian's python3, with the
// README's authorizer and limit advice. Python opens every connection with
// SQLITE_OPEN_CREATE, even for a mode=ro URI, and an ATTACH inherits that:
// only mode=ro in the ATTACH's own URI, or the advice, stops it.
func TestUntrustedSQLPython(t *testing.T) {
	ext := testtool.Extension(t)
	python := testtool.Program(t, "/usr/bin/python3")
	e := newSecClientEnv(t)
	out, stderr := e.runPython(t, python, pythonUntrusted, ext, e.Ref.Path,
		e.replicaURI("new.db", "&source="+e.Source),
		e.replicaURI("outside.db", "&source=file://"+e.other),
		e.replicaURI("endpoint.db", "&source="+e.Source+"&endpoint=http://127.0.0.1:9"),
		"file:"+e.Path+"?vfs=walrust&interval=20ms&source="+e.Source)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	want := []string{
		"ro-open error unable to open database file",
		"ro-attach error unable to open database",
		"outside error unable to open database file",
		"endpoint error unable to open database file",
		"inside ok 3",
		"authorizer error not authorized",
		"limit error too many attached databases",
	}
	if len(lines) != len(want) {
		t.Fatalf("python printed:\n%s\nstderr:\n%s", out, stderr)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("python printed %q, want %q", lines[i], w)
		}
	}
	for _, why := range []string{"may not create", "not in WALRUST_SOURCES", "endpoint= is not allowed"} {
		if !strings.Contains(stderr.String(), why) {
			t.Errorf("stderr does not say %q:\n%s", why, stderr)
		}
	}
	checkEmptyDir(t, e.writable)
}
