package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// What SQL that the application does not trust can do on a replica
// (README "Security"): hold its connection no longer than the open's
// timeout allows, build no view on a read-only connection, and, with the
// README's advice, create nothing through VACUUM INTO.

// TestWaitTimeoutBounded: walrust_wait's and walrust_sync's timeout_ms
// is cut to the open's timeout=, so one statement holds its connection no
// longer than the application allowed, whatever SQL asks: the wait runs
// in Go and neither sqlite3_interrupt nor a progress handler can end it
// (before, walrust_wait(N, 1e12) held the connection for 31 years). And a
// timeout_ms whose nanoseconds overflow an int64 is a long one, not none
// (before, walrust_wait(N, 9223372036854775807) and walrust_sync(9e15)
// failed at once with "timed out").
func TestWaitTimeoutBounded(t *testing.T) {
	e := newWorld(t, 4096, false)
	e.Ref.Insert(1)
	head := e.Commit()
	db := openDB(t, e.followURI("&timeout=1s"))
	e.waitCaughtUp(db)

	for _, ms := range []string{"1000000000000", "9223372036854775807"} {
		start := time.Now()
		var got int64
		err := db.QueryRow("SELECT walrust_wait(?, "+ms+")", head+10).Scan(&got)
		took := time.Since(start)
		if err == nil || !strings.Contains(err.Error(), "timed out") {
			t.Fatalf("walrust_wait(%d, %s) = %d, %v; want a time-out", head+10, ms, got, err)
		}
		if took < 900*time.Millisecond || took > 10*time.Second {
			t.Fatalf("walrust_wait(%d, %s) failed after %s; want the open's timeout, 1s", head+10, ms, took)
		}
		if !strings.Contains(err.Error(), "timeout=1s") {
			t.Errorf("walrust_wait(%d, %s): %v; want it to say the open's timeout cut the wait", head+10, ms, err)
		}
	}
	var got int64
	if err := db.QueryRow("SELECT walrust_sync(9000000000000000)").Scan(&got); err != nil || got != int64(head) {
		t.Fatalf("walrust_sync(9000000000000000) = %d, %v; want %d", got, err, head)
	}
	// The PRAGMA the functions call is bounded alike.
	start := time.Now()
	var answer string
	if err := db.QueryRow(fmt.Sprintf("PRAGMA walrust_call_wait='%d,1000000000000'", head+10)).Scan(&answer); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*time.Second || !strings.HasPrefix(answer, "error:") {
		t.Fatalf("PRAGMA walrust_call_wait: %q after %s", answer, took)
	}
}

// TestMappedViewNotBuiltReadOnly: a path WALRUST_REPLICAS maps may be
// bootstrapped by a read-only open (the operator asked for that replica),
// but an as_of view of it is built by an open that may create files only,
// as for any other replica (README "Time travel"): before, SQL on a
// read-only connection (sqlite3 -readonly) could ATTACH view after view
// of a mapped replica, each a full copy of the database downloaded into
// <db>-asof/. A view already built is still read.
func TestMappedViewNotBuiltReadOnly(t *testing.T) {
	ext := testtool.Extension(t)
	sqlite3 := testtool.Program(t, "sqlite3")
	e := newWorld(t, 4096, false)
	e.history(2)
	env := append(os.Environ(), "WALRUST_DEFAULT_VFS=1", "WALRUST_REPLICAS="+e.Path+"="+e.Source)
	// The shell opens its database after the load, as an application in
	// default-VFS mode does: an ATTACH uses its connection's VFS.
	run := func(open, script string) string {
		t.Helper()
		cmd := exec.Command(sqlite3)
		cmd.Env = env
		cmd.Stdin = strings.NewReader(".load " + ext + "\n.open " + open + " " + e.Ref.Path + "\n" + script)
		out, _ := cmd.CombinedOutput() // a failed statement makes the exit status non-zero
		return string(out)
	}
	views := e.Path + "-asof"

	for _, uri := range []string{"file:" + e.Path + "?as_of=2", "file:" + e.Path + "?vfs=walrust&as_of=2"} {
		out := run("--readonly", "ATTACH '"+uri+"' AS v;\nSELECT 'attached', count(*) FROM v.t;\n")
		if strings.Contains(out, "attached") || !strings.Contains(out, "may not create files") {
			t.Fatalf("read-only ATTACH of %s:\n%s", uri, out)
		}
		if _, err := os.Lstat(views); err == nil {
			t.Fatalf("read-only ATTACH of %s built a view in %s:\n%s", uri, views, out)
		}
	}

	// Built by an open that may create files, the view is then read
	// read-only too.
	out := run("", "ATTACH 'file:"+e.Path+"?as_of=2' AS v;\nSELECT 'attached', count(*) FROM v.t;\n")
	if !strings.Contains(out, "attached|") {
		t.Fatalf("read-write ATTACH as_of=2:\n%s", out)
	}
	out = run("--readonly", "ATTACH 'file:"+e.Path+"?as_of=2' AS v;\nSELECT 'attached', count(*) FROM v.t;\n")
	if !strings.Contains(out, "attached|") {
		t.Fatalf("read-only ATTACH of a view already built:\n%s", out)
	}
}

// pythonVacuumInto runs VACUUM INTO, which SQLite opens with
// SQLITE_OPEN_CREATE even on a read-only connection, on a replica opened
// read-only: bare, then with each of the README's guards against ATTACH.
const pythonVacuumInto = `
import sqlite3, sys
ext, replica, target, plain = sys.argv[1:]
loader = sqlite3.connect(":memory:")
loader.enable_load_extension(True)
loader.load_extension(ext)

def no_attach(action, *args):
    return sqlite3.SQLITE_DENY if action == sqlite3.SQLITE_ATTACH else sqlite3.SQLITE_OK

for guard in ["authorizer", "limit"]:
    db = sqlite3.connect(replica, uri=True)
    if guard == "authorizer":
        db.set_authorizer(no_attach)
    else:
        db.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    for into in [target, plain]:
        try:
            db.execute("VACUUM INTO ?", (into,))
            print(guard, "ok", flush=True)
        except Exception as e:
            print(guard, "error", e, flush=True)
`

// TestVacuumIntoGuarded: VACUUM INTO opens its target with
// SQLITE_OPEN_CREATE whatever the connection's flags, so on a read-only
// connection it can bootstrap a new replica (and write a plain copy),
// which walrust cannot tell from any other open that may create files;
// the README says so, and that the guards it advises against ATTACH (an
// authorizer denying SQLITE_ATTACH, SQLITE_LIMIT_ATTACHED 0) stop it too,
// as this checks from Debian's python3.
func TestVacuumIntoGuarded(t *testing.T) {
	ext := testtool.Extension(t)
	python := testtool.Program(t, "/usr/bin/python3")
	e := newSecClientEnv(t)
	db := openDB(t, "file:"+e.Path+"?vfs=walrust&interval=20ms&source="+e.Source)
	e.waitCaughtUp(db)
	out, stderr := e.runPython(t, python, pythonVacuumInto, ext, "file:"+e.Path+"?vfs=walrust&mode=ro",
		e.replicaURI("new.db", "&source="+e.Source), filepath.Join(e.writable, "plain.db"))
	want := []string{
		"authorizer error authorization denied",
		"authorizer error authorization denied",
		"limit error too many attached databases",
		"limit error too many attached databases",
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(want) {
		t.Fatalf("python printed:\n%s\nstderr:\n%s", out, stderr)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("python printed %q, want %q", lines[i], w)
		}
	}
	checkEmptyDir(t, e.writable)
}
