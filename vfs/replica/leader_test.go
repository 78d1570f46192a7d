package replica

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Goroutines (each Open is its own open file description, so flocks
// conflict as between processes) open a never-made replica; some close it
// at once (removing the lock file), others hold it a moment. No two may
// hold it at once, and no lock file may remain at the end.
// TestLeaderLockRemoval: replicas that were never made remove their lock
// file when they close, while others race to open them; never do two lead
// at once, and nothing is left behind.
func TestLeaderLockRemoval(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	var holders, maxHolders, leads atomic.Int32
	var wg sync.WaitGroup
	deadline := time.Now().Add(3 * time.Second)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				r, err := Open(path, "file:///nowhere")
				if errors.Is(err, ErrFollowed) {
					continue
				} else if err != nil {
					t.Error(err)
					return
				}
				n := holders.Add(1)
				leads.Add(1)
				for {
					m := maxHolders.Load()
					if n <= m || maxHolders.CompareAndSwap(m, n) {
						break
					}
				}
				if g%2 == 0 {
					time.Sleep(50 * time.Microsecond)
				}
				holders.Add(-1)
				r.Close()
			}
		}()
	}
	wg.Wait()
	t.Logf("%d leads", leads.Load())
	if m := maxHolders.Load(); m > 1 {
		t.Fatalf("%d goroutines led the replica at once", m)
	}
	for _, f := range []string{lockPath(path), path + "-replica-log"} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind (%v)", f, err)
		}
	}
}

// TestOtherSourceRefusedWhileFollowed: an open for another source than the
// replica's is refused for that reason even while another process follows
// the replica, not told to wait for its turn.
func TestOtherSourceRefusedWhileFollowed(t *testing.T) {
	w := newWorld(t, 4096, true)
	w.bootstrapped() // open, and so followed, until the test ends
	_, err := Open(w.Path, "file:///elsewhere")
	if err == nil || errors.Is(err, ErrFollowed) || !strings.Contains(err.Error(), w.Source) {
		t.Fatalf("open for another source while followed: %v; want it refused, naming %s", err, w.Source)
	}
}

// TestLeaderLockPathErrors: a replica in a directory that does not exist,
// or that this user may not write, fails with the system's error and what
// to do about it.
func TestLeaderLockPathErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nodir")
	_, err := acquireLeader(filepath.Join(missing, "app.db"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "the directory "+missing+" does not exist; create it first") {
		t.Fatalf("missing directory: %v", err)
	}
	if os.Geteuid() == 0 {
		return // root writes anywhere
	}
	ro := t.TempDir()
	if err := os.Chmod(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(ro, 0o755)
	_, err = acquireLeader(filepath.Join(ro, "app.db"))
	if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "must be writable by this user") {
		t.Fatalf("read-only directory: %v", err)
	}
}
