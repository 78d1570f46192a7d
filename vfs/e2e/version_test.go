package e2e

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// TestVersionFunction: select walrust_version() answers the same version
// as `walrust version` in every client: the sqlite3 shell (the connection
// that loaded the extension), Python (a connection opened after the load,
// which gets the function by SQLite's auto-extension), walrust-shell, and
// a Go program with the VFS linked in (this test process).
func TestVersionFunction(t *testing.T) {
	ext := testtool.Extension(t)
	out, err := exec.Command(testtool.Built(t, "walrust"), "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	want, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "walrust ")
	if !ok || want == "" {
		t.Fatalf("walrust version printed %q", out)
	}
	e := newWorld(t, 4096, false)
	db := e.follow() // the replica exists from here on, for walrust-shell
	var linked string
	if err := db.QueryRow("SELECT walrust_version()").Scan(&linked); err != nil {
		t.Fatal(err)
	}

	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	// This test binary is built by go test, which links in no commit:
	// it reports the release alone.
	release, _, _ := strings.Cut(want, " (")
	if linked != release {
		t.Errorf("linked (mattn/go-sqlite3): walrust_version() = %q, want %q", linked, release)
	}
	got := map[string]string{
		"sqlite3 shell": run(testtool.Program(t, "sqlite3"), "-batch", "-cmd", ".load "+ext, ":memory:", "SELECT walrust_version();"),
		"python3, a later connection": run(testtool.Program(t, "/usr/bin/python3"), "-c", `
import sqlite3, sys
loader = sqlite3.connect(":memory:")
loader.enable_load_extension(True)
loader.load_extension(sys.argv[1])
print(sqlite3.connect(":memory:").execute("SELECT walrust_version()").fetchone()[0])
`, ext),
		"walrust-shell": run(testtool.Built(t, "walrust-shell"), "--local", e.Path, "-c", "SELECT walrust_version();"),
	}
	for client, v := range got {
		if !strings.Contains(v, want) {
			t.Errorf("%s: walrust_version() = %q, want %q", client, v, want)
		}
	}
	var det int
	if err := db.QueryRow("SELECT count(*) FROM pragma_function_list WHERE name = 'walrust_version'").Scan(&det); err != nil || det == 0 {
		t.Errorf("walrust_version is not in pragma_function_list (%d, %v)", det, err)
	}
}
