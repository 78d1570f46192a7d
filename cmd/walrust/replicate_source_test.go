package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The help text: "a source that is wrong (a missing bucket or directory,
// denied access) ends the run with an error at start". Before e5976b6 that
// held for an existing replica too (the store was opened first); now an
// existing replica's store is opened later, and the command runs forever.
// TestReplicateExistingReplicaWrongSource: a replica that exists, whose
// source has gone (a directory removed), ends the run at start with the
// reason, as the help says, instead of polling it forever.
func TestReplicateExistingReplicaWrongSource(t *testing.T) {
	path, _ := newDB(t, "wal")
	storeDir := filepath.Join(t.TempDir(), "store")
	url := "file://" + storeDir
	publishOnce(t, path, url)
	replica := filepath.Join(t.TempDir(), "replica.db")
	p := startWalrust(t, nil, "replicate", url, "--local", replica, "--interval", "50ms")
	p.waitFor(&p.stdout, `Polling for updates`)
	if code := p.stop(syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p)
	}
	// The directory goes away (a mistyped path after a move, a deleted bucket).
	if err := os.Rename(storeDir, storeDir+".moved"); err != nil {
		t.Fatal(err)
	}
	p = startWalrust(t, nil, "replicate", url, "--local", replica, "--interval", "50ms")
	select {
	case <-p.done:
		if code := p.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(p.stderr.String(), "directory does not exist") {
			t.Fatalf("exit %d; want 1 with the reason:\n%s", code, p)
		}
	case <-time.After(3 * time.Second):
		t.Fatalf("still running 3s after start with a source whose directory does not exist (help: ends the run with an error at start):\n%s", p)
	}
}

// TestReplicateHealsModifiedReplica: a replica written to by a plain
// sqlite3 (without mode=ro) while walrust was stopped is moved aside at the
// next start, with the reason on stderr, and bootstrapped again: it
// converges back to the primary, and the modified copy is kept.
func TestReplicateHealsModifiedReplica(t *testing.T) {
	path, db := newDB(t, "wal")
	addContent(t, db, 50)
	url := "file://" + t.TempDir()
	publishOnce(t, path, url)
	replica := filepath.Join(t.TempDir(), "replica.db")
	p := startWalrust(t, nil, "replicate", url, "--local", replica, "--interval", "50ms")
	p.waitFor(&p.stdout, `Polling for updates`)
	if code := p.stop(syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p)
	}

	// Someone writes to the replica with the plain sqlite3 shell.
	if out, err := exec.Command("sqlite3", replica, "INSERT INTO t (body) VALUES ('never on the primary')").CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}
	p = startWalrust(t, nil, "replicate", url, "--local", replica, "--interval", "50ms")
	p.waitFor(&p.stdout, `Polling for updates`)
	if !strings.Contains(p.stderr.String(), "changed by something other than walrust") || !strings.Contains(p.stderr.String(), ".modified-") {
		t.Fatalf("no word of the modified replica on stderr:\n%s", p)
	}
	checkReplica(t, db, replica)
	if code := p.stop(syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p)
	}
	aside, _ := filepath.Glob(replica + ".modified-*")
	if len(aside) != 1 {
		t.Fatalf("copies kept aside: %v", aside)
	}
	out, err := exec.Command("sqlite3", aside[0], "SELECT count(*) FROM t WHERE body = 'never on the primary'").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Fatalf("the copy kept aside lost the write: %s %v", out, err)
	}
}
