package python

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/walrust/walrust/vfs/testkit/testtool"
	"github.com/walrust/walrust/vfs/testkit/worldtest"
)

// wheel is the wheel make wheel wrote for the VERSION file's release.
func wheel(t *testing.T) string {
	t.Helper()
	v, err := os.ReadFile("../VERSION")
	if err != nil {
		t.Fatal(err)
	}
	pattern := filepath.Join(testtool.BuildDir(), "dist", "walrust_vfs-"+strings.TrimSpace(string(v))+"-py3-none-*.whl")
	found, _ := filepath.Glob(pattern)
	if len(found) != 1 {
		testtool.Missing(t, fmt.Sprintf("one wheel %s (found %d; run make wheel)", pattern, len(found)))
	}
	return found[0]
}

// TestWheelRecord checks the wheel's bookkeeping, which pip takes on
// trust: RECORD lists every other file with its sha256 and size, WHEEL
// marks it platform-specific with the tag its name carries, METADATA names
// the distribution and version, and the extension is inside.
func TestWheelRecord(t *testing.T) {
	path := wheel(t)
	z, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	name := filepath.Base(path)
	parts := strings.SplitN(strings.TrimSuffix(name, ".whl"), "-", 3) // walrust_vfs, version, tag
	info := "walrust_vfs-" + parts[1] + ".dist-info/"
	files := map[string][]byte{}
	for _, f := range z.File {
		r, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		files[f.Name] = data
	}
	for _, want := range []string{"walrust_vfs/__init__.py", "walrust_vfs/_version.py", "walrust_vfs/walrust.so",
		info + "METADATA", info + "WHEEL", info + "RECORD"} {
		if _, ok := files[want]; !ok {
			t.Errorf("the wheel has no %s", want)
		}
	}
	record := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(files[info+"RECORD"])), "\n") {
		f := strings.Split(line, ",")
		if len(f) != 3 {
			t.Fatalf("RECORD line %q", line)
		}
		record[f[0]] = f[1] + "," + f[2]
	}
	for n, data := range files {
		sum := sha256.Sum256(data)
		want := "sha256=" + base64.RawURLEncoding.EncodeToString(sum[:]) + "," + fmt.Sprint(len(data))
		if n == info+"RECORD" {
			want = ","
		}
		if got, ok := record[n]; !ok || got != want {
			t.Errorf("RECORD says %q for %s, want %q", got, n, want)
		}
		delete(record, n)
	}
	if len(record) != 0 {
		t.Errorf("RECORD lists files the wheel lacks: %v", record)
	}
	wheelMeta := string(files[info+"WHEEL"])
	for _, want := range []string{"Wheel-Version: 1.0\n", "Root-Is-Purelib: false\n", "Tag: " + parts[2] + "\n"} {
		if !strings.Contains(wheelMeta, want) {
			t.Errorf("WHEEL lacks %q:\n%s", want, wheelMeta)
		}
	}
	if !regexp.MustCompile(`^py3-none-[a-z0-9_]+$`).MatchString(parts[2]) {
		t.Errorf("tag %q", parts[2])
	}
	meta := string(files[info+"METADATA"])
	for _, want := range []string{"Metadata-Version: 2.1\n", "Name: walrust-vfs\n", "Version: " + parts[1] + "\n"} {
		if !strings.Contains(meta, want) {
			t.Errorf("METADATA lacks %q:\n%s", want, meta)
		}
	}
}

// venv makes a virtual environment of Debian's python3 (with its
// system's packages when system is true, for python3-apsw), installs the
// wheel into it offline, and returns its python.
func venv(t *testing.T, system bool) string {
	t.Helper()
	whl := wheel(t)
	python := testtool.Program(t, "/usr/bin/python3")
	dir := filepath.Join(t.TempDir(), "venv")
	args := []string{"-m", "venv"}
	if system {
		args = append(args, "--system-site-packages")
	}
	if out, err := exec.Command(python, append(args, dir)...).CombinedOutput(); err != nil {
		if strings.Contains(string(out), "ensurepip") || strings.Contains(string(out), "No module named venv") {
			testtool.Missing(t, "python3's venv module (Debian's python3-venv)")
		}
		t.Fatalf("python3 -m venv: %v\n%s", err, out)
	}
	py := filepath.Join(dir, "bin", "python")
	out, err := exec.Command(py, "-m", "pip", "install", "--no-index", "--no-cache-dir",
		"--disable-pip-version-check", "--quiet", whl).CombinedOutput()
	if err != nil {
		t.Fatalf("pip install %s: %v\n%s", whl, err, out)
	}
	return py
}

// follower follows a replica through walrust_vfs in the venv's python:
// with sqlite3 (walrust_vfs.connect) or apsw (walrust_vfs.load and
// walrust_vfs.uri). It prints "rows txid" for the snapshot, waits for a
// line on stdin (the next file is published), and prints "rows txid" once
// the rows have changed. The sqlite3 flavour first checks load's errors.
const follower = `
import os, sys, time
flavor, replica, source = sys.argv[1:4]
import walrust_vfs
assert os.path.isfile(walrust_vfs.path), walrust_vfs.path
assert walrust_vfs.path.startswith(sys.prefix + os.sep), (walrust_vfs.path, sys.prefix)
if flavor == "sqlite3":
    import sqlite3
    class NoLoading(sqlite3.Connection):  # a Python built without extension loading
        enable_load_extension = None
        load_extension = None
    try:
        walrust_vfs.load(sqlite3.connect(":memory:", factory=NoLoading))
        sys.exit("load without extension loading did not fail")
    except RuntimeError as e:
        assert "apsw" in str(e), e
    try:
        walrust_vfs.load(object())
        sys.exit("load(object()) did not fail")
    except TypeError:
        pass
    db = walrust_vfs.connect(replica, source=source, interval="50ms")
    query = lambda q: db.execute(q).fetchone()[0]
else:
    import apsw
    walrust_vfs.load(apsw.Connection(":memory:"))
    db = apsw.Connection(walrust_vfs.uri(replica, source=source, interval="50ms"),
                         flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE | apsw.SQLITE_OPEN_URI)
    query = lambda q: db.cursor().execute(q).fetchone()[0]
count = lambda: query("SELECT count(*) FROM t")
first = count()
print(first, query("PRAGMA walrust_txid"), flush=True)
sys.stdin.readline()
deadline = time.time() + 30
while count() == first:
    if time.time() > deadline:
        sys.exit("timed out at %d rows" % first)
    time.sleep(0.02)
print(count(), query("PRAGMA walrust_txid"), flush=True)
`

// follow runs follower in the venv's python on a store holding a snapshot
// of 5 rows (TXID 2), publishes a sixth row (TXID 3), and checks that the
// script saw both. The replica's name needs escaping in a URI.
func follow(t *testing.T, py, flavor string) {
	w := worldtest.New(t, worldtest.Options{})
	w.Ref.Insert(5)
	w.AdvanceRef()
	w.Snapshot()
	replica := filepath.Join(w.Dir, "a replica?#%&=.db")

	var stderr testtool.Buffer
	cmd := exec.Command(py, "-c", follower, flavor, replica, w.Source)
	cmd.Dir = t.TempDir() // import walrust_vfs from the venv, not from this directory
	cmd.Stderr = &stderr
	stdin, stdout := testtool.StartPiped(t, cmd)
	defer cmd.Process.Kill()
	out := testtool.ReadLines(stdout)
	next := func(want string) {
		t.Helper()
		if got := out.Next(t, &stderr); got != want {
			t.Fatalf("python printed %q, want %q; stderr:\n%s", got, want, &stderr)
		}
	}
	next("5 2")
	w.Ref.Insert(1)
	w.Commit()
	fmt.Fprintln(stdin, "published")
	next("6 3")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("python: %v; stderr:\n%s", err, &stderr)
	}
	if _, err := os.Stat(replica + "-replica-state"); err != nil {
		t.Fatalf("the replica is not where the script opened it: %v", err)
	}
}

// TestPipSqlite3: pip installs the wheel into a fresh venv, and
// walrust_vfs.connect follows a file store through Python's sqlite3.
func TestPipSqlite3(t *testing.T) {
	follow(t, venv(t, false), "sqlite3")
}

// TestPipApsw: the same through apsw (Debian's python3-apsw, seen from a
// venv with the system's packages), which names its methods
// enableloadextension/loadextension before 3.41.
func TestPipApsw(t *testing.T) {
	if err := exec.Command(testtool.Program(t, "/usr/bin/python3"), "-c", "import apsw").Run(); err != nil {
		testtool.Missing(t, "apsw for /usr/bin/python3 (Debian's python3-apsw)")
	}
	follow(t, venv(t, true), "apsw")
}
