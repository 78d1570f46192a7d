package e2e

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// SQL cannot reach beyond the replica (README "Security"): an open that may
// not create files creates none, nothing is created next to a file walrust
// did not make, and WALRUST_SOURCES keeps SQL to the stores it lists.

// TestNoCreateOpen: an open without SQLITE_OPEN_CREATE (mode=ro, in the
// open's URI or in an ATTACH's) does not bootstrap a new replica nor leave
// any side file; a replica that exists opens read-only as usual. (An
// ATTACH without mode=ro inherits the connection's open flags, which
// mattn/go-sqlite3 and Python always open with SQLITE_OPEN_CREATE, even
// for a mode=ro URI: TestUntrustedSQLShell covers a connection opened
// read-only.)
func TestNoCreateOpen(t *testing.T) {
	e := newWorld(t, 4096, false)
	e.Ref.Insert(3)
	e.Commit()
	dir := filepath.Join(e.Dir, "writable")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	newDB := filepath.Join(dir, "new.db")
	src := "&source=" + e.Source + "&interval=20ms"

	openFails(t, "file:"+newDB+"?vfs=walrust&mode=ro"+src)
	if !strings.Contains(e.Logs.String(), "may not create") {
		t.Fatalf("the log does not say why:\n%s", e.Logs)
	}
	checkEmptyDir(t, dir)

	ro := openDB(t, "file:"+e.Ref.Path+"?mode=ro")
	attach := "ATTACH 'file:" + newDB + "?vfs=walrust&mode=ro" + src + "' AS r"
	if _, err := ro.Exec(attach); err == nil {
		t.Fatal("ATTACH through walrust on a read-only connection succeeded")
	}
	checkEmptyDir(t, dir)

	// Made once by an open that may create, the replica then opens and
	// attaches read-only.
	db := openDB(t, "file:"+newDB+"?vfs=walrust"+src)
	e.waitCaughtUp(db)
	db.Close()
	db = openDB(t, "file:"+newDB+"?vfs=walrust&mode=ro")
	e.waitCaughtUp(db)
	if _, err := ro.Exec(attach); err != nil {
		t.Fatalf("ATTACH of an existing replica on a read-only connection: %v", err)
	}
	var n int
	if err := ro.QueryRow("SELECT count(*) FROM r.t").Scan(&n); err != nil || n != 3 {
		t.Fatalf("attached replica: %d rows, %v; want 3", n, err)
	}
}

// TestNoCreateForeignFile: a plain database opened through walrust
// read-only is refused, as with create allowed, and gets no lock file, log
// directory or state file beside it.
func TestNoCreateForeignFile(t *testing.T) {
	e := newWorld(t, 4096, false)
	openFails(t, "file:"+e.Ref.Path+"?vfs=walrust&mode=ro&source="+e.Source)
	checkNoSideFiles(t, e.Ref.Path)
}

// TestSourcesAllowlist: with WALRUST_SOURCES set, an open follows only a
// store under one of its prefixes, whether the URI, WALRUST_SOURCE or the
// state file names it, and URIs may not choose S3 endpoints.
func TestSourcesAllowlist(t *testing.T) {
	e := newWorld(t, 4096, false)
	e.Ref.Insert(3)
	e.Commit()
	other := filepath.Join(e.Dir, "other-store")
	if err := os.CopyFS(other, os.DirFS(e.StoreDir)); err != nil {
		t.Fatal(err)
	}
	uri := func(path, params string) string {
		return "file:" + filepath.Join(e.Dir, path) + "?vfs=walrust&interval=20ms" + params
	}
	refused := func(uri, why string) {
		t.Helper()
		before := len(e.Logs.String())
		openFails(t, uri)
		if !strings.Contains(e.Logs.String()[before:], why) {
			t.Fatalf("open of %s: the log does not say %q:\n%s", uri, why, e.Logs)
		}
	}

	// A replica of the other store, made before the allowlist was set.
	db := openDB(t, uri("old.db", "&source=file://"+other))
	e.waitCaughtUp(db)
	db.Close()

	t.Setenv("WALRUST_SOURCES", "s3://bucket/app, file://"+e.StoreDir+"/")
	db = openDB(t, uri("a.db", "&source="+e.Source))
	e.waitCaughtUp(db)
	db = openDB(t, uri("b.db", "&source=file://"+e.StoreDir+"/./ltx/.."))
	e.waitCaughtUp(db)

	refused(uri("c.db", "&source=file://"+other), "not in WALRUST_SOURCES")
	refused(uri("c.db", "&source=file://"+e.StoreDir+"/../other-store"), "not in WALRUST_SOURCES")
	refused(uri("old.db", ""), "file://"+other+" (per its state file) is not in WALRUST_SOURCES")
	t.Setenv("WALRUST_SOURCE", "file://"+other)
	refused(uri("c.db", ""), "file://"+other+" is not in WALRUST_SOURCES")
	t.Setenv("WALRUST_SOURCE", "")
	checkNoSideFiles(t, filepath.Join(e.Dir, "c.db"))

	// A prefix ends on a path segment.
	t.Setenv("WALRUST_SOURCES", "file://"+e.StoreDir[:len(e.StoreDir)-1])
	refused(uri("d.db", "&source="+e.Source), "not in WALRUST_SOURCES")
	t.Setenv("WALRUST_SOURCES", "file://"+e.Dir)
	db = openDB(t, uri("d.db", "&source="+e.Source))
	e.waitCaughtUp(db)

	// No signed request goes to a host the SQL names, in a parameter or in
	// the source URL.
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, "no", http.StatusForbidden)
	}))
	defer srv.Close()
	t.Setenv("WALRUST_SOURCES", "s3://bucket/app")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDSECURITYTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_SESSION_TOKEN", "token")
	for _, params := range []string{"&endpoint=" + srv.URL, "&region=us-east-1", "&path_style=true"} {
		refused(uri("s3.db", "&source=s3://bucket/app&timeout=2s"+params), strings.SplitN(params[1:], "=", 2)[0]+"= is not allowed")
	}
	refused(uri("s3.db", "&source=s3://bucket/app?endpoint="+srv.URL+"&timeout=2s"), "not in WALRUST_SOURCES")
	refused(uri("s3.db", "&source=s3://bucket/app2&timeout=2s"), "not in WALRUST_SOURCES")
	if n := requests.Load(); n != 0 {
		t.Fatalf("%d requests reached the endpoint named in SQL", n)
	}
	checkNoSideFiles(t, filepath.Join(e.Dir, "s3.db"))
}

// checkEmptyDir fails if anything was created in dir.
func checkEmptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("%s left behind by a refused open", filepath.Join(dir, e.Name()))
	}
}

// checkNoSideFiles fails if any of walrust's files exists next to path.
func checkNoSideFiles(t *testing.T, path string) {
	t.Helper()
	for _, suffix := range []string{"-replica-lock", "-replica-state", "-replica-log", "-journal"} {
		if _, err := os.Stat(path + suffix); err == nil {
			t.Errorf("%s created", path+suffix)
		}
	}
}
