package durable

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestWriteFile: the file holds the new content, replacing the old, and no
// temporary file is left behind.
func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	for _, want := range []string{"first", "second, longer"} {
		if err := WriteFile(path, []byte(want)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Fatalf("read %q, %v; want %q", got, err, want)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("directory holds %v, %v; want only the file", entries, err)
	}
	if err := SyncDir(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("SyncDir of a missing directory: no error")
	}
}

// TestModes: CreateTemp and WriteFile give 0666 less the umask, the mode
// SQLite gives its own files, where os.CreateTemp gives 0600.
func TestModes(t *testing.T) {
	for _, tc := range []struct {
		umask int
		want  os.FileMode
	}{{0o022, 0o644}, {0o002, 0o664}, {0o077, 0o600}} {
		old := syscall.Umask(tc.umask)
		dir := t.TempDir()
		f, err := CreateTemp(dir, ".segment-*.tmp")
		if err != nil {
			syscall.Umask(old)
			t.Fatal(err)
		}
		f.Close()
		state := filepath.Join(dir, "state")
		err = WriteFile(state, []byte("{}"))
		syscall.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(f.Name())
		if !strings.HasPrefix(name, ".segment-") || !strings.HasSuffix(name, ".tmp") || len(name) <= len(".segment-.tmp") {
			t.Errorf("CreateTemp made %q, want .segment-<random>.tmp", name)
		}
		for _, p := range []string{f.Name(), state} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != tc.want {
				t.Errorf("umask %03o: %s has mode %v, want %v", tc.umask, filepath.Base(p), got, tc.want)
			}
		}
	}
}

// TestCreateTempUnique: names do not collide, and a missing directory is
// an error naming it.
func TestCreateTempUnique(t *testing.T) {
	dir := t.TempDir()
	seen := map[string]bool{}
	for range 100 {
		f, err := CreateTemp(dir, "x-*")
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		if seen[f.Name()] {
			t.Fatalf("%s handed out twice", f.Name())
		}
		seen[f.Name()] = true
	}
	if _, err := CreateTemp(filepath.Join(dir, "missing"), "x-*"); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("CreateTemp in a missing directory: %v", err)
	}
}
