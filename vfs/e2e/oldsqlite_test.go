package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// oldSQLite is a release older than walrust supports (3.31.0): the
// amalgamation mattn/go-sqlite3 v1.13.0 ships, from the Go module proxy.
const (
	oldSQLiteModule  = "github.com/mattn/go-sqlite3@v1.13.0"
	oldSQLiteVersion = "3.30.1"
)

// oldLoader is a C program, linked with SQLite 3.30.1, that loads an
// extension into a connection and prints SQLite's answer. Built once into
// the build directory.
const oldLoader = `#include <stdio.h>
#include "sqlite3-binding.h"
int main(int argc, char **argv) {
  sqlite3 *db;
  char *err = NULL;
  (void)argc;
  sqlite3_open(":memory:", &db);
  sqlite3_enable_load_extension(db, 1);
  int rc = sqlite3_load_extension(db, argv[1], NULL, &err);
  printf("sqlite %s rc %d: %s\n", sqlite3_libversion(), rc, err ? err : "");
  sqlite3_close(db);
  return 0;
}
`

// TestOldSQLiteRefused: loaded into an SQLite older than 3.31.0, the
// extension refuses with a message naming both versions, and the process
// goes on (no crash).
func TestOldSQLiteRefused(t *testing.T) {
	ext := testtool.Extension(t)
	gcc := testtool.Program(t, "gcc")
	bin := filepath.Join(testtool.BuildDir(), "old-sqlite-"+oldSQLiteVersion, "loader")
	if _, err := os.Stat(bin); err != nil {
		out, err := exec.Command("go", "mod", "download", "-json", oldSQLiteModule).Output()
		if err != nil {
			t.Fatalf("go mod download %s: %v", oldSQLiteModule, err)
		}
		var mod struct{ Dir string }
		if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
			t.Fatalf("go mod download %s: %s", oldSQLiteModule, out)
		}
		if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
			t.Fatal(err)
		}
		src := filepath.Join(t.TempDir(), "loader.c")
		if err := os.WriteFile(src, []byte(oldLoader), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(gcc, "-O0", "-w", "-I", mod.Dir, "-o", bin+".tmp", src, filepath.Join(mod.Dir, "sqlite3-binding.c"), "-ldl", "-lpthread", "-lm")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build a loader with SQLite %s: %v\n%s", oldSQLiteVersion, err, out)
		}
		if err := os.Rename(bin+".tmp", bin); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(bin, ext).CombinedOutput()
	if err != nil {
		t.Fatalf("the loader with SQLite %s: %v\n%s", oldSQLiteVersion, err, out)
	}
	got := strings.TrimSpace(string(out))
	want := "walrust needs SQLite 3.31.0 or newer; this process runs SQLite " + oldSQLiteVersion
	if !strings.HasPrefix(got, "sqlite "+oldSQLiteVersion+" rc 1: ") || !strings.Contains(got, want) {
		t.Fatalf("loading into SQLite %s: %q; want an error saying %q", oldSQLiteVersion, got, want)
	}
}
