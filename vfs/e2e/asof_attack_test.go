package e2e

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// TestAsOfViewModes: a view's directories get 0755 less the umask, as the
// replica's log directory, and its files 0666 less the umask, so that
// another user (a web server) reads a view that a cron job built, as it
// reads the replica. Before, the view directory was made by os.MkdirTemp
// and renamed into place: 0700 whatever the umask.
func TestAsOfViewModes(t *testing.T) {
	testtool.ForUmasks(t, func(t *testing.T, want fs.FileMode) {
		w := newWorld(t, 4096, false)
		w.history(1)
		db := openDB(t, w.uri("source="+w.Source+"&as_of=1"))
		var n int
		if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
			t.Fatal(err)
		}
		dirWant := 0o755 &^ (0o666 &^ want)
		for _, p := range []string{w.Path + "-asof", w.Path + "-asof/txid-1"} {
			if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != dirWant {
				t.Fatalf("%s: mode %v (%v), want %v", p, fi.Mode().Perm(), err, dirWant)
			}
		}
		for _, p := range []string{"view.db", "view.db-replica-state", "in-use"} {
			p = filepath.Join(w.Path+"-asof/txid-1", p)
			if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
				t.Fatalf("%s: mode %v (%v), want %v", p, fi.Mode().Perm(), err, want)
			}
		}
	})
}
