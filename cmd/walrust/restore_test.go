package main

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/testkit/testtool"
)

var restoredLine = regexp.MustCompile(`^Restored TXID (\d+) \(committed (\S+)\) to (\S+): [0-9.]+ [KM]?B, \d+ pages of 4096 bytes, (WAL|rollback journal) mode\n$`)

// restored runs walrust restore and returns the TXID and commit time it
// printed.
func restored(t *testing.T, args ...string) (ltx.TXID, time.Time) {
	t.Helper()
	out := mustRun(t, append([]string{"restore"}, args...)...)
	m := restoredLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("restore %s printed %q", strings.Join(args, " "), out)
	}
	var txid uint64
	fmt.Sscan(m[1], &txid)
	ts, err := time.Parse(time.RFC3339Nano, m[2])
	if err != nil {
		t.Fatal(err)
	}
	return ltx.TXID(txid), ts
}

// checkRestored compares a restored file with the content the primary had.
// It opens it read-write, as its user would: the last connection's close
// removes the -wal and -shm files of a WAL-mode database, and the next
// restore needs no --force.
func checkRestored(t *testing.T, path, want, what string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ok, mode string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("%s: integrity_check %q, %v", what, ok, err)
	}
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("%s: journal_mode %q, %v; the primary's is wal", what, mode, err)
	}
	if got := testtool.ContentHash(t, db); got != want {
		t.Fatalf("%s: content differs from the primary's", what)
	}
}

func TestRestore(t *testing.T) {
	src, db := newDB(t, "wal")
	dir := t.TempDir()
	url := "file://" + filepath.Join(dir, "store")
	content := map[ltx.TXID]string{}
	for i := range 4 {
		if i > 0 {
			mustExec(t, db, fmt.Sprintf("INSERT INTO t (body) VALUES ('row %d')", i), fmt.Sprintf("DELETE FROM t WHERE id = %d", i*7))
		}
		content[publishOnce(t, src, url)] = testtool.ContentHash(t, db)
	}
	out := filepath.Join(dir, "out.db")
	commits := map[ltx.TXID]time.Time{}
	for _, txid := range []ltx.TXID{2, 1, 4, 3} {
		os.Remove(out)
		got, ts := restored(t, url, "-o", out, "--txid", fmt.Sprint(txid))
		if got != txid {
			t.Fatalf("--txid %d restored TXID %d", txid, got)
		}
		commits[txid] = ts
		checkRestored(t, out, content[txid], fmt.Sprintf("TXID %d", txid))
	}
	// The hex form, the newest, and times: a millisecond after TXID 2's
	// commit is TXID 2, its commit time itself is TXID 1.
	os.Remove(out)
	if got, _ := restored(t, url, "--txid", "0000000000000003", "-o", out); got != 3 {
		t.Fatalf("--txid in hex restored TXID %d", got)
	}
	for _, c := range []struct {
		args []string
		want ltx.TXID
	}{
		{nil, 4},
		{[]string{"--time", commits[2].Add(time.Millisecond).Format(time.RFC3339Nano)}, 2},
		{[]string{"--time", commits[2].Format(time.RFC3339Nano)}, 1},
	} {
		if got, _ := restored(t, append([]string{url, "-o", out, "--force"}, c.args...)...); got != c.want {
			t.Fatalf("restore %v: TXID %d, want %d", c.args, got, c.want)
		}
		checkRestored(t, out, content[c.want], fmt.Sprint(c.args))
	}

	// An existing file is kept without --force, and so is a WAL beside
	// it; with --force both go.
	before, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out+"-wal", []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := walrust(t, "restore", url, "-o", out, "--txid", "2"); code != 1 || !strings.Contains(errOut, "--force") {
		t.Fatalf("restore over an existing file: exit %d, %q", code, errOut)
	}
	if after, _ := os.ReadFile(out); string(after) != string(before) {
		t.Fatal("the existing file changed")
	}
	restored(t, url, "-o", out, "--txid", "2", "--force")
	checkRestored(t, out, content[2], "--force")

	// A point the store cannot build: exit 1, an error naming it, nothing
	// left behind.
	out2 := filepath.Join(dir, "other.db")
	for _, c := range []struct{ args, want string }{
		{"--txid 9", "TXID 9 is past the store's newest, TXID 4"},
		{"--time 2001-01-01T00:00:00Z", "older than anything the store still holds: the oldest point it can build is TXID 1"},
	} {
		_, errOut, code := walrust(t, append([]string{"restore", url, "-o", out2}, strings.Fields(c.args)...)...)
		if code != 1 || !strings.Contains(errOut, c.want) {
			t.Errorf("restore %s: exit %d, %q; want exit 1 and %q", c.args, code, errOut, c.want)
		}
	}
	for _, p := range []string{out2, out2 + "-walrust-restore", out + "-walrust-restore"} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is left behind (%v)", p, err)
		}
	}

	// Usage errors: exit 2.
	for _, args := range [][]string{
		{"restore", url},
		{"restore", "-o", out2},
		{"restore", url, "-o", out2, "--txid", "2", "--time", "2025-01-01T00:00:00Z"},
		{"restore", url, "-o", out2, "--txid", "two"},
		{"restore", url, "-o", out2, "--txid", "0"},
		{"restore", url, "-o", out2, "--time", "yesterday"},
		{"restore", "relative/dir", "-o", out2},
	} {
		if stdout, errOut, code := walrust(t, args...); code != 2 || stdout != "" || !strings.Contains(errOut, "Usage: walrust restore") {
			t.Errorf("walrust %s: exit %d, %q; want exit 2 and usage", strings.Join(args, " "), code, errOut)
		}
	}
}

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
