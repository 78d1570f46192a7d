package publish

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// promoted stands in for walrust promote: the store's state at its head,
// rebuilt from its files, becomes a new primary's database at a new path,
// adopted into a work directory of its own. It returns the new primary.
func promoted(t *testing.T, pub *Publisher, workDir string) *primary {
	t.Helper()
	rebuilt, pos := rebuild(t, pub.st)
	path := filepath.Join(t.TempDir(), "promoted.db")
	b, err := os.ReadFile(rebuilt)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	err = Adopt(path, Options{WorkDir: workDir}, Adopted{
		Store: pub.st.String(), TXID: pos.TXID, Checksum: pos.PostApplyChecksum,
		PageSize: 4096, Commit: uint32(len(b) / 4096), Image: rebuilt,
	})
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return &primary{t: t, path: path, db: db}
}

// TestAdoptContinuesTheLineage: the first publish from a promoted database
// is a level-0 file at the store's head + 1 whose pre-apply checksum is the
// store's, so that the whole store still rebuilds file after file (rebuild
// checks every pre-apply checksum) to the new primary's content.
func TestAdoptContinuesTheLineage(t *testing.T) {
	for _, mode := range []string{"wal", "delete"} {
		t.Run(mode, func(t *testing.T) {
			st := newFileStore(t)
			old := newPrimary(t, mode, 4096)
			old.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, body BLOB)")
			pub := publisherFor(t, old, st, "")
			for i := range 3 {
				insertRows(t, old, i*10, 10, 500)
				publishOnce(t, pub)
			}
			head := uint64(pub.pos.TXID)

			wd := t.TempDir()
			p := promoted(t, pub, wd)
			insertRows(t, p, 1000, 5, 500)
			next := publisherFor(t, p, st, wd)
			res := publishOnce(t, next)
			expect(t, res, true, false, head+1)
			verifyStore(t, p, st, res)
			insertRows(t, p, 2000, 5, 500)
			res = publishOnce(t, next)
			expect(t, res, true, false, head+2)
			verifyStore(t, p, st, res)
		})
	}
}

// TestAdoptRefusesAFork: while the old primary keeps publishing, the
// promoted database's publish fails with ErrForked and a message that says
// what to do, at every try, writing nothing; with NewLineage it publishes
// a snapshot after the store's head instead.
func TestAdoptRefusesAFork(t *testing.T) {
	st := newFileStore(t)
	old := newPrimary(t, "wal", 4096)
	old.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, body BLOB)")
	pub := publisherFor(t, old, st, "")
	insertRows(t, old, 0, 10, 500)
	publishOnce(t, pub)

	wd := t.TempDir()
	p := promoted(t, pub, wd)
	insertRows(t, old, 100, 10, 500)
	moved := uint64(publishOnce(t, pub).TXID)
	insertRows(t, p, 1000, 5, 500)
	next := publisherFor(t, p, st, wd)
	for range 2 {
		_, err := next.PublishOnce(context.Background())
		if !errors.Is(err, ErrForked) || !strings.Contains(err.Error(), "--new-lineage") {
			t.Fatalf("publish after the store moved on: %v; want ErrForked saying what to do", err)
		}
	}
	if err := next.Run(context.Background(), 10*time.Millisecond); !errors.Is(err, ErrForked) {
		t.Fatalf("Run: %v; want it to stop with ErrForked", err)
	}
	if _, pos := rebuild(t, st); uint64(pos.TXID) != moved {
		t.Fatalf("the store ends at %s after the refused publishes; want TXID %d, the old primary's", pos, moved)
	}
	next.Close()

	lineage, err := New(p.path, st, Options{WorkDir: wd, NewLineage: true})
	if err != nil {
		t.Fatal(err)
	}
	defer lineage.Close()
	res, err := lineage.PublishOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	expect(t, res, true, true, moved+1)
	rebuilt, _ := rebuildSince(t, st, res.TXID)
	sameContent(t, p, rebuilt)
}
