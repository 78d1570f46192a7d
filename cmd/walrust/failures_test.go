package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// TestPublishOutageQuiet: while its store is gone, walrust publish fails at
// every tick (50 ms) and says so once; when the store is back it says it
// recovered, after how long and how many failures: two lines for dozens of
// failed publishes.
func TestPublishOutageQuiet(t *testing.T) {
	path, db := newDB(t, "wal")
	dest := filepath.Join(t.TempDir(), "store")
	if err := os.Mkdir(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	p := startWalrust(t, nil, "publish", path, "file://"+dest, "--interval", "50ms")
	p.waitFor(&p.stdout, `Published`)

	moved := dest + ".away"
	if err := os.Rename(dest, moved); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for time.Since(start) < time.Second { // about 20 failing ticks, each with a change
		mustExec(t, db, "INSERT INTO t (body) VALUES ('during the outage')")
		time.Sleep(20 * time.Millisecond)
	}
	if err := os.Rename(moved, dest); err != nil {
		t.Fatal(err)
	}
	testtool.Eventually(t, "the recovery line", 10*time.Second, func() error {
		if !strings.Contains(p.stderr.String(), "recovered after") {
			return os.ErrNotExist
		}
		return nil
	})
	if code := p.stop(syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p)
	}
	var lines []string
	for _, l := range strings.Split(p.stderr.String(), "\n") {
		if strings.HasPrefix(l, "walrust publish: ") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 2 || !strings.Contains(lines[1], "recovered after") {
		t.Fatalf("an outage of dozens of ticks printed %d lines:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	t.Logf("%s", strings.Join(lines, "\n"))
}
