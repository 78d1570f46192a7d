package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// pythonForker loads the extension, follows a replica, and forks the way
// pre-fork servers do. The child reports what each use of walrust gives it
// and exits; the parent reports whether the child ended, then keeps
// following: each line it reads on stdin asks for the row count.
const pythonForker = `
import os, sqlite3, sys, time
ext, uri, other = sys.argv[1], sys.argv[2], sys.argv[3]
loader = sqlite3.connect(":memory:")
loader.enable_load_extension(True)
loader.load_extension(ext)
db = sqlite3.connect(uri, uri=True)
print("parent", db.execute("SELECT count(*) FROM t").fetchone()[0], flush=True)

def attempt(what, fn):
    try:
        print(what, "ok", fn(), flush=True)
    except Exception as e:
        print(what, "error", e, flush=True)

def load_again():
    c = sqlite3.connect(":memory:")
    c.enable_load_extension(True)
    c.load_extension(ext)

pid = os.fork()
if pid == 0:
    attempt("child-old-connection", lambda: db.execute("SELECT count(*) FROM t").fetchone()[0])
    attempt("child-new-connection", lambda: sqlite3.connect(other, uri=True).execute("SELECT count(*) FROM t").fetchone()[0])
    attempt("child-load", load_again)
    attempt("child-plain-sqlite", lambda: sqlite3.connect(":memory:").execute("SELECT datetime('now') IS NOT NULL").fetchone()[0])
    os._exit(0)
deadline = time.time() + 20
while time.time() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        print("child-exit", os.waitstatus_to_exitcode(status), flush=True)
        break
    time.sleep(0.02)
else:
    os.kill(pid, 9)
    print("child-hung", flush=True)
for line in sys.stdin:
    print("parent", db.execute("SELECT count(*) FROM t").fetchone()[0], flush=True)
`

// TestPythonFork: Go's runtime does not survive fork(), so in a child forked
// after the extension was loaded every use of walrust must fail at once
// with a clear message (the fork guard, cshim/forkguard.c), never stall or
// serve a replica that has stopped following; the parent goes on following.
func TestPythonFork(t *testing.T) {
	ext := testtool.Extension(t)
	python := testtool.Program(t, "/usr/bin/python3")
	e := newWorld(t, 4096, false)
	e.Ref.Exec("INSERT INTO t (v) VALUES ('before the fork')")
	e.Commit()

	var stderr testtool.Buffer
	other := fmt.Sprintf("file:%s-other?vfs=walrust&source=file://%s", e.Path, e.StoreDir)
	cmd := exec.Command(python, "-c", pythonForker, ext, e.followURI(""), other)
	cmd.Stderr = &stderr
	stdin, stdout := testtool.StartPiped(t, cmd)
	defer cmd.Process.Kill()
	out := testtool.ReadLines(stdout)
	for _, want := range []string{
		"parent 1",
		"child-old-connection error disk I/O error",
		"child-new-connection error unable to open database file",
		"child-load error error during initialization: walrust: this process was forked after it loaded the walrust extension",
		"child-plain-sqlite ok 1",
		"child-exit 0",
	} {
		if got := out.Next(t, &stderr); !strings.HasPrefix(got, want) {
			t.Fatalf("python printed %q, want %q; stderr:\n%s", got, want, &stderr)
		}
	}
	// The parent still follows.
	e.Ref.Exec("INSERT INTO t (v) VALUES ('after the fork')")
	e.Commit()
	waitFor(t, "the parent to see the row published after the fork", func() (bool, error) {
		fmt.Fprintln(stdin, "count")
		return out.Next(t, &stderr) == "parent 2", nil
	})
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("python: %v; stderr:\n%s", err, &stderr)
	}
	// Only now has all of the child's stderr been copied into the buffer:
	// the child has exited, but the pipe is read by a goroutine of
	// os/exec, which Wait waits for.
	const msg = "walrust: this process was forked after it loaded the walrust extension"
	if n := strings.Count(stderr.String(), msg); n != 1 {
		t.Errorf("the child's stderr says it %d times, want once:\n%s", n, &stderr)
	}
}
