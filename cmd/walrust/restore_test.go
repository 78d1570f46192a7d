package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRestoreRefusals: restore refuses, before downloading anything, what
// would write the wrong thing or in the wrong place: the zero time (it
// read as no point at all, and restored the newest TXID), a live
// replica's base file even with --force (its state file and its follower
// would go on with a file that is not theirs), and a directory that does
// not exist (named as such, not as a failed mkdir of a work directory).
func TestRestoreRefusals(t *testing.T) {
	path, db := newDB(t, "wal")
	store := "file://" + filepath.Join(t.TempDir(), "store")
	publishOnce(t, path, store)
	mustExec(t, db, "INSERT INTO t (body) VALUES ('two')")
	publishOnce(t, path, store)
	dir := t.TempDir()

	out := filepath.Join(dir, "zero.db")
	for _, at := range []string{"0001-01-01T00:00:00Z", "0001-01-01T02:00:00+02:00"} {
		if _, errOut, code := walrust(t, "restore", store, "-o", out, "--time", at); code != 2 || !strings.Contains(errOut, "older than anything") {
			t.Fatalf("restore --time %s: exit %d\n%s", at, code, errOut)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("restore --time %s wrote %s", at, out)
		}
	}

	replica := filepath.Join(dir, "replica.db")
	p := startWalrust(t, nil, "replicate", store, "--local", replica, "--interval", "50ms")
	waitFolded(t, p, replica, 2)
	p.stop(os.Interrupt)
	before, err := os.ReadFile(replica)
	if err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := walrust(t, "restore", store, "-o", replica, "--txid", "1", "--force"); code != 1 || !strings.Contains(errOut, "is a walrust replica") {
		t.Fatalf("restore --force over a replica: exit %d\n%s", code, errOut)
	}
	if after, err := os.ReadFile(replica); err != nil || string(after) != string(before) {
		t.Fatalf("restore --force over a replica changed its base file (%v)", err)
	}

	missing := filepath.Join(dir, "no", "such", "out.db")
	if _, errOut, code := walrust(t, "restore", store, "-o", missing); code != 1 || !strings.Contains(errOut, "does not exist") {
		t.Fatalf("restore into a missing directory: exit %d\n%s", code, errOut)
	}
}
