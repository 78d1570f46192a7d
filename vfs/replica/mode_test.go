package replica

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/testkit/testtool"
	"github.com/walrust/walrust/vfs/testkit/worldtest"
)

// TestFileModes: every file a replica is made of gets the mode SQLite gives
// a new database, 0666 less the umask, so that other users (a web server)
// can read it; before, os.CreateTemp made the base file, its segments and
// staged snapshots 0600 whatever the umask.
func TestFileModes(t *testing.T) {
	testtool.ForUmasks(t, func(t *testing.T, want fs.FileMode) {
		w := newWorld(t, 4096, false)
		r, f := w.bootstrapped()
		checkMode(t, want, w.Path, statePath(w.Path), lockPath(w.Path))

		// A pinned reader keeps what follows in the log directory.
		v, err := r.Pin()
		if err != nil {
			t.Fatal(err)
		}
		defer v.Unpin()
		w.InsertRows(3, 500)
		w.Commit() // 2
		mustStep(t, f)
		checkMode(t, want, logFiles(t, r, segmentExt)...)

		// A snapshot that nothing connects to is staged.
		for range 3 {
			w.InsertRows(3, 500)
			w.Commit() // 3..5
		}
		w.Snapshot()
		for txid := ltx.TXID(3); txid <= 4; txid++ { // L0 5 stays: the store still has its head
			w.Remove(worldtest.L0(txid))
		}
		for i := 0; i < 3 && r.Head().TXID != 5; i++ {
			mustStep(t, f)
		}
		checkMode(t, want, logFiles(t, r, stagedExt)...)
		checkMode(t, want, statePath(w.Path))
	})
}

func checkMode(t *testing.T, want fs.FileMode, paths ...string) {
	t.Helper()
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %v, want %v", filepath.Base(p), got, want)
		}
	}
}

// logFiles lists the log directory's files with suffix, failing if none.
func logFiles(t *testing.T, r *Replica, suffix string) []string {
	t.Helper()
	entries, err := os.ReadDir(r.logDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), suffix) {
			out = append(out, filepath.Join(r.logDir, e.Name()))
		}
	}
	if len(out) == 0 {
		t.Fatalf("no %s file in the log directory (%d entries)", suffix, len(entries))
	}
	return out
}
