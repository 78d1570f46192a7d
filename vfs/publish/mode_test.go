package publish

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// TestFileModes: the LTX files publish writes into a file store, and its
// position file, get 0666 less the umask, as SQLite's own files do, so
// that replicas run by other users can read the store; before, the store's
// os.CreateTemp made every LTX file 0600.
func TestFileModes(t *testing.T) {
	testtool.ForUmasks(t, func(t *testing.T, want fs.FileMode) {
		p := newPrimary(t, "wal", 4096)
		root := t.TempDir()
		st, err := store.OpenFile(root)
		if err != nil {
			t.Fatal(err)
		}
		work := t.TempDir()
		pub := publisherFor(t, p, st, work)
		p.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, body TEXT)")
		expect(t, publishOnce(t, pub), true, true, 1)
		insertRows(t, p, 0, 10, 100)
		expect(t, publishOnce(t, pub), true, false, 2)

		var files []string
		err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(path, ".ltx") {
				files = append(files, path)
			}
			return err
		})
		if err != nil || len(files) != 2 {
			t.Fatalf("store holds %v (%v), want a snapshot and a level-0 file", files, err)
		}
		files = append(files, filepath.Join(work, positionFile))
		for _, f := range files {
			fi, err := os.Stat(f)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != want {
				t.Errorf("%s: mode %v, want %v", strings.TrimPrefix(f, root), got, want)
			}
		}
	})
}
