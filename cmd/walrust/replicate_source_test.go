package main

import (
	"os"
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
