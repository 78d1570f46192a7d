package e2e

import (
	"database/sql"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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

// TestAsOfForeignFile: as_of= next to a local file that walrust did not
// make (a plain SQLite database, e.g. one that walrust promote turned
// into the primary) builds nothing beside it, as every other open refuses
// to (README "Security": nothing beside a file walrust did not make);
// before, it made <file>-asof/ there.
func TestAsOfForeignFile(t *testing.T) {
	w := newWorld(t, 4096, false)
	w.history(1)
	plain, err := sql.Open("sqlite3", w.Path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Exec("CREATE TABLE mine(x)"); err != nil {
		t.Fatal(err)
	}
	plain.Close()
	openFails(t, w.uri("source="+w.Source+"&as_of=1"))
	if _, err := os.Lstat(w.Path + "-asof"); err == nil {
		t.Fatalf("%s-asof was made beside a file walrust did not make", w.Path)
	}
	if !strings.Contains(w.Logs.String(), "not made by walrust") {
		t.Fatalf("the open was not refused for the foreign file:\n%s", w.Logs)
	}
}
