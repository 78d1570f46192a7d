package publish

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/store"
)

// snapshotted is a rollback-mode primary with a table t of 100 rows, a file
// store, and a publisher (work directory work, or a new one for "") that
// has published it once: a snapshot at TXID 1.
func snapshotted(t *testing.T, work string) (*primary, *store.FileStore, *Publisher) {
	t.Helper()
	return snapshottedMode(t, "delete", work)
}

// snapshotted, for a primary in the journal mode given.
func snapshottedMode(t *testing.T, mode, work string) (*primary, *store.FileStore, *Publisher) {
	t.Helper()
	p := newPrimary(t, mode, 4096)
	st := newFileStore(t)
	newTable(t, p)
	pub := publisherFor(t, p, st, work)
	expect(t, publishOnce(t, pub), true, true, 1)
	return p, st, pub
}

func newTable(t *testing.T, p *primary) {
	t.Helper()
	p.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, body TEXT)")
	insertRows(t, p, 0, 100, 200)
}

// A new publisher on the same work directory continues the TXID sequence.
func TestRestartContinuesSequence(t *testing.T) {
	p := newPrimary(t, "wal", 4096)
	st := newFileStore(t)
	work := t.TempDir()
	newTable(t, p)
	pub := publisherFor(t, p, st, work)
	expect(t, publishOnce(t, pub), true, true, 1)
	insertRows(t, p, 100, 10, 200)
	expect(t, publishOnce(t, pub), true, false, 2)
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}

	pub = publisherFor(t, p, st, work)
	expect(t, publishOnce(t, pub), false, false, 2) // checks the store, finds its own file
	insertRows(t, p, 200, 10, 200)
	res := publishOnce(t, pub)
	expect(t, res, true, false, 3)
	verifyStore(t, p, st, res)
	if got := st.Stats().Puts; got != 3 {
		t.Fatalf("%d puts, want 3", got)
	}
}

// Idle publishes cost no store request once the store has been checked.
func TestUnchangedMakesNoRequests(t *testing.T) {
	_, st, pub := snapshotted(t, "")
	before := st.Stats()
	for range 3 {
		expect(t, publishOnce(t, pub), false, false, 1)
	}
	if after := st.Stats(); after != before {
		t.Fatalf("idle publishes made requests: %+v -> %+v", before, after)
	}
}

// A store that is ahead of the local position gets a snapshot after its head.
func TestStoreAheadGetsSnapshot(t *testing.T) {
	p, st, pub := snapshotted(t, "")
	insertRows(t, p, 100, 10, 200)
	expect(t, publishOnce(t, pub), true, false, 2)

	// Someone else publishes TXIDs 3-4.
	foreign := store.FileInfo{Level: 0, MinTXID: 3, MaxTXID: 4}
	b := readFile(t, st, store.FileInfo{Level: 0, MinTXID: 2, MaxTXID: 2})
	if err := st.Put(context.Background(), foreign, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	insertRows(t, p, 200, 10, 200)
	res := publishOnce(t, pub)
	expect(t, res, true, true, 5)
	if !strings.Contains(res.Reason, "ahead") {
		t.Fatalf("reason %q", res.Reason)
	}
	rebuilt, pos := rebuildSince(t, st, 5)
	if pos.TXID != 5 || pos.PostApplyChecksum != res.Checksum {
		t.Fatalf("rebuilt to %s", pos)
	}
	sameImage(t, p.path, rebuilt)
	sameContent(t, p, rebuilt)

	insertRows(t, p, 300, 10, 200)
	expect(t, publishOnce(t, pub), true, false, 6)
}

// A store that lost the files (a new bucket, a wiped directory) gets a
// snapshot after the local position, even when the database did not change.
func TestWipedStoreGetsSnapshot(t *testing.T) {
	p := newPrimary(t, "wal", 4096)
	root := t.TempDir()
	st, err := store.OpenFile(root)
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	newTable(t, p)
	pub := publisherFor(t, p, st, work)
	expect(t, publishOnce(t, pub), true, true, 1)
	insertRows(t, p, 100, 10, 200)
	expect(t, publishOnce(t, pub), true, false, 2)
	pub.Close()

	if err := os.RemoveAll(filepath.Join(root, "ltx")); err != nil {
		t.Fatal(err)
	}
	pub = publisherFor(t, p, st, work)
	res := publishOnce(t, pub)
	expect(t, res, true, true, 3)
	if !strings.Contains(res.Reason, "no longer holds") {
		t.Fatalf("reason %q", res.Reason)
	}
	verifyStore(t, p, st, res)
}

// Without its work directory a publisher starts from the store's head.
func TestLostPositionContinuesAfterStoreHead(t *testing.T) {
	p, st, pub := snapshotted(t, "")
	insertRows(t, p, 100, 10, 200)
	expect(t, publishOnce(t, pub), true, false, 2)
	pub.Close()

	pub = publisherFor(t, p, st, t.TempDir())
	res := publishOnce(t, pub)
	expect(t, res, true, true, 3)
	verifyStore(t, p, st, res)
}

// A damaged position file means a snapshot, not a failure.
func TestDamagedPositionGetsSnapshot(t *testing.T) {
	work := t.TempDir()
	p, st, pub := snapshotted(t, work)
	pub.Close()
	if err := os.WriteFile(filepath.Join(work, positionFile), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	pub = publisherFor(t, p, st, work)
	res := publishOnce(t, pub)
	expect(t, res, true, true, 2)
	if !strings.Contains(res.Reason, "unreadable") {
		t.Fatalf("reason %q", res.Reason)
	}
}

// Leftovers of an interrupted publish are removed; only the last image stays.
func TestWorkDirLeftoversRemoved(t *testing.T) {
	work := t.TempDir()
	p, st, pub := snapshotted(t, work)
	pub.Close()
	for _, name := range []string{copyFile, pendingFile, imageName(7), redoName(7), sumsFile + ".tmp", ".ltx-page-index-1.tmp"} {
		if err := os.WriteFile(filepath.Join(work, name), []byte("junk"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pub = publisherFor(t, p, st, work)
	entries, err := os.ReadDir(work)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{imageName(1), lockFile, positionFile, redoName(1), sumsFile}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("work directory holds %v, want %v", names, want)
	}
}

func TestSecondPublisherRefused(t *testing.T) {
	p := newPrimary(t, "delete", 4096)
	st := newFileStore(t)
	work := t.TempDir()
	publisherFor(t, p, st, work)
	if _, err := New(p.path, st, Options{WorkDir: work}); err == nil || !strings.Contains(err.Error(), "another publisher") {
		t.Fatalf("second publisher: %v", err)
	}
}

func TestEmptyDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.db")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	st := newFileStore(t)
	pub, err := New(path, st, Options{WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	res, err := pub.PublishOnce(context.Background())
	if err != nil || !res.Empty || res.Changed {
		t.Fatalf("empty database: %+v %v", res, err)
	}
	if st.Stats().Puts != 0 {
		t.Fatal("published an empty database")
	}
	// The publisher holds no lock on it: a writer that does not wait
	// gets through, and the next publish sees what it wrote.
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=0")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE t (x); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatalf("a write after an empty publish: %v", err)
	}
	expect(t, publishOnce(t, pub), true, true, 1)
}

func TestMissingDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.db")
	if _, err := New(path, newFileStore(t), Options{WorkDir: t.TempDir()}); err == nil {
		t.Fatal("New succeeded on a missing database")
	}
	if _, err := os.Stat(path); err == nil {
		t.Fatal("New created the database")
	}
}

// The default work directory sits next to the database.
func TestDefaultWorkDir(t *testing.T) {
	p := newPrimary(t, "delete", 4096)
	newTable(t, p)
	pub, err := New(p.path, newFileStore(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	expect(t, publishOnce(t, pub), true, true, 1)
	if _, err := os.Stat(filepath.Join(p.path+"-walrust-publish", imageName(ltx.TXID(1)))); err != nil {
		t.Fatal(err)
	}
}
