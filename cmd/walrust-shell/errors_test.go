package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestErrorsWithoutErrno: errors end with what SQLite and walrust say, not
// with the errno of whichever system call last failed in the process
// (mattn/go-sqlite3 appends it: "unable to open database file: invalid
// argument"), which says nothing about the failure.
func TestErrorsWithoutErrno(t *testing.T) {
	e := newEnv(t)
	foreign := filepath.Join(e.dir, "plain.db")
	if err := os.WriteFile(foreign, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	r := e.run("", e.source(), "--local", foreign, "-c", "SELECT 1")
	want := "walrust-shell: open replica " + foreign + ": unable to open database file (see the walrust log above for the reason)\n"
	if r.code != 1 || !strings.HasSuffix(r.stderr, want) || !strings.Contains(r.stderr, "not made by walrust") {
		t.Errorf("exit %d, stderr %q; want it to end with %q", r.code, r.stderr, want)
	}
	for _, q := range []string{"INSERT INTO users (name) VALUES ('eve')", "SELECT x FROM nope"} {
		r = e.query(q)
		if r.code != 1 || !strings.HasPrefix(r.stderr, "Error: ") || strings.Contains(r.stderr, "invalid argument") {
			t.Errorf("%s: exit %d, stderr %q; want an Error: line without an errno", q, r.code, r.stderr)
		}
	}
}
