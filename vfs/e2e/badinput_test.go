package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/worldtest"
)

// These tests feed the VFS bad input — bad URIs and environment, bad or
// foreign local files, and a store holding junk, corrupt files, gaps and a
// page size change — and check that every open that must fail fails (and
// fast, unless it waits for a snapshot), that nothing it must not touch is
// touched, and that a replica keeps serving its last good state and says
// why until the store lets it move on.

// TestBadInputFailedOpenLeavesOthersAlone: failed opens of every kind do
// not disturb a connection that is already open. sqlite3vfs calls Close on
// file id 0 after a failed open; without vfs.go's workaround this closes
// whichever connection holds id 0 — the first file opened in the process,
// which is why this is the first test of the package.
func TestBadInputFailedOpenLeavesOthersAlone(t *testing.T) {
	e := newWorld(t, 4096, false)
	e.Ref.Insert(10)
	e.Commit()
	db := e.follow()
	db.SetMaxOpenConns(2) // conn below, and one for waitCaughtUp
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	e.waitCaughtUp(db)
	want := e.refRows()

	empty := filepath.Join(e.Dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(e.Dir, "foreign.db")
	if err := os.WriteFile(foreign, []byte("not walrust's"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(e.Dir, "other.db")
	for _, uri := range []string{
		"file:" + other + "?vfs=walrust&source=file://" + e.Dir + "/missing",
		"file:" + other + "?vfs=walrust&source=gopher://x/y",
		"file:" + other + "?vfs=walrust&source=file://" + empty + "&timeout=50ms",
		"file:" + foreign + "?vfs=walrust&source=" + e.Source,
		"file:" + other + "?vfs=walrust&source=" + e.Source + "&interval=banana",
		e.uri("source=file://" + empty), // already open here with another source
	} {
		openFails(t, uri)
		e.checkRows(conn, want, "after failed open of "+uri)
	}
	// The open connection still follows the store.
	e.Ref.Insert(3)
	e.Commit()
	e.waitCaughtUp(db)
	e.checkRows(conn, e.refRows(), "after a new commit")
}

// TestBadInputSource: sources that cannot work fail the open at once (the
// timeout, 20s, is never waited for), say why, and create no replica.
func TestBadInputSource(t *testing.T) {
	e := newWorld(t, 4096, false)
	for _, c := range []struct{ name, source, why string }{
		{"unknown scheme", "ftp://example.com/store", "unknown scheme"},
		{"no scheme", "relative/store", "no scheme"},
		{"relative file path", "file:relative/store", "absolute"},
		{"host in file URL", "file://relative/store", "absolute"},
		{"missing directory", "file://" + e.Dir + "/missing", "does not exist"},
		{"store is a file", "file://" + e.Ref.Path, "not a directory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			took := openFails(t, e.uri("source="+c.source+"&timeout=20s"))
			if took > 3*time.Second {
				t.Fatalf("open took %s; want a fast failure", took)
			}
			if !strings.Contains(e.Logs.String(), c.why) {
				t.Fatalf("log does not say %q:\n%s", c.why, e.Logs)
			}
			nothingCreated(t, e.Path)
		})
	}
}

// TestBadInputNoSnapshot: a store without a snapshot fails the open after
// the timeout, saying so; once a snapshot lands, the same path opens.
func TestBadInputNoSnapshot(t *testing.T) {
	e := newWorld(t, 4096, true)
	e.Ref.Insert(5)
	e.Commit() // an L0 file, but no snapshot
	const timeout = 300 * time.Millisecond
	took := openFails(t, e.followURI("&timeout=300ms"))
	if took < timeout || took > timeout+3*time.Second {
		t.Fatalf("open failed after %s; want about %s", took, timeout)
	}
	if !strings.Contains(e.Logs.String(), "no snapshot") {
		t.Fatalf("log does not say there is no snapshot:\n%s", e.Logs)
	}
	nothingCreated(t, e.Path)
	e.Snapshot()
	db := e.follow()
	e.waitCaughtUp(db)
}

// TestBadInputOnlySnapshotCorrupt: the store's only snapshot is corrupt.
// The open fails after the timeout and says the snapshot was rejected (not
// that there is none); a good snapshot then opens.
func TestBadInputOnlySnapshotCorrupt(t *testing.T) {
	e := newWorld(t, 4096, true)
	e.Ref.Insert(5)
	txid := e.AdvanceRef()
	snap := e.Encode(1, txid)
	snap[len(snap)/2] ^= 0x08
	fi := store.FileInfo{Level: store.SnapshotLevel, MinTXID: 1, MaxTXID: txid}
	e.WriteRaw(fi, snap)
	name := fi.Name()
	took := openFails(t, e.followURI("&timeout=300ms"))
	if took < 300*time.Millisecond {
		t.Fatalf("open failed after %s, before the timeout", took)
	}
	var line string
	for _, l := range strings.Split(e.Logs.String(), "\n") {
		if strings.Contains(l, "cannot open database") {
			line = l
		}
	}
	if !strings.Contains(line, "rejected") || !strings.Contains(line, name) {
		t.Fatalf("the open's error does not name the rejected snapshot %s: %q", name, line)
	}
	e.Ref.Insert(1)
	e.AdvanceRef()
	e.Snapshot()
	db := e.follow()
	e.waitCaughtUp(db)
}

// TestBadInputJunkIgnored: files in the store that are not LTX files, temp
// files, a directory named like a (newer) snapshot and malformed names are
// all ignored.
func TestBadInputJunkIgnored(t *testing.T) {
	e := newWorld(t, 1024, false)
	junk := map[string]string{
		"ltx/0/README": "hello",
		"ltx/0/.0000000000000002-0000000000000002.ltx.tmp": "partial upload",
		"ltx/0/0000000000000002-0000000000000002.ltx.tmp":  "partial upload",
		"ltx/0/foo.ltx": "junk",
		"ltx/0/0000000000000003-0000000000000002.ltx":     "min > max",
		"ltx/0/0000000000000000-0000000000000000.ltx":     "TXID 0",
		"ltx/0/00000000000000002-0000000000000002.ltx":    "17 digits",
		"ltx/1/zzzzzzzzzzzzzzzz-zzzzzzzzzzzzzzzz.ltx":     "not hex",
		"ltx/9/0000000000000001-00000000000000ff.ltx.tmp": "snapshot upload in progress",
		"ltx/junk/0000000000000001-0000000000000009.ltx":  "not a level",
		"ltx/0000000000000001-0000000000000009.ltx":       "not in a level",
		"0000000000000001-0000000000000009.ltx":           "not under ltx",
	}
	for name, content := range junk {
		p := filepath.Join(e.StoreDir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"ltx/9/0000000000000001-00000000000000ff.ltx", "ltx/0/0000000000000002-0000000000000005.ltx"} {
		if err := os.MkdirAll(filepath.Join(e.StoreDir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	db := e.follow()
	for range 4 {
		e.Ref.Insert(4)
		e.Commit()
	}
	e.waitCaughtUp(db)
	if st := waitNoError(t, db); st.Bootstraps != 1 {
		t.Fatalf("status %+v; want one bootstrap", st)
	}
	if strings.Contains(e.Logs.String(), "rejected") {
		t.Fatalf("junk was downloaded and rejected:\n%s", e.Logs)
	}
}

// TestBadInputCorruptFiles: a truncated file and a file with a flipped byte
// are rejected. The replica keeps serving its last good state, the status
// names the file, and the replica moves on once a good file for the next
// TXID appears at a higher level, or a newer snapshot.
func TestBadInputCorruptFiles(t *testing.T) {
	e := newWorld(t, 1024, false)
	e.Pub.NoChecksum = true // as Litestream writes them: only the file checksum protects
	e.Ref.Insert(6)
	e.Commit()
	db := e.follow()
	e.waitCaughtUp(db)
	good := e.refRows()

	// A half-written L0 file.
	e.Ref.Insert(6)
	txid := e.AdvanceRef()
	data := e.Encode(txid, txid)
	name := worldtest.L0(txid).Name()
	e.WriteRaw(worldtest.L0(txid), data[:len(data)/2])
	waitError(t, db, name)
	e.checkRows(db, good, "after a truncated file")
	// It keeps saying so on later polls.
	waitPolls(t, db, 3)
	waitError(t, db, name, "rejected")
	e.checkRows(db, good, "still after a truncated file")
	if !strings.Contains(e.Logs.String(), "rejected") {
		t.Fatalf("rejection not logged:\n%s", e.Logs)
	}
	e.Put(1, data)
	e.waitCaughtUp(db)
	waitNoError(t, db)
	good = e.refRows()

	// A flipped byte in the middle of an L0 file.
	e.Ref.Exec("UPDATE t SET v = randomblob(700) WHERE id % 2 = 0")
	txid = e.AdvanceRef()
	data = e.Encode(txid, txid)
	data[len(data)/2] ^= 0x01
	name = worldtest.L0(txid).Name()
	e.WriteRaw(worldtest.L0(txid), data)
	waitError(t, db, name)
	e.checkRows(db, good, "after a corrupt file")
	e.Ref.Insert(2)
	e.AdvanceRef()
	e.Snapshot()
	e.waitCaughtUp(db)
	if st := waitNoError(t, db); st.Bootstraps != 2 {
		t.Fatalf("status %+v; want a second bootstrap", st)
	}
}

// TestBadInputGap: a file whose TXIDs skip ahead leaves the replica at its
// last state with an error that names the missing TXID, until the gap is
// filled.
func TestBadInputGap(t *testing.T) {
	e := newWorld(t, 4096, false)
	e.Ref.Insert(3)
	e.Commit() // 2
	db := e.follow()
	e.waitCaughtUp(db)
	good := e.refRows()
	e.Ref.Insert(3)
	e.AdvanceRef() // 3, held back
	e.Ref.Insert(3)
	e.AdvanceRef() // 4
	e.Put(0, e.Encode(4, 4))
	waitError(t, db, "gap", "TXID 0000000000000003")
	e.checkRows(db, good, "at the gap")
	var txid uint64
	if err := db.QueryRow("PRAGMA walrust_txid").Scan(&txid); err != nil || txid != 2 {
		t.Fatalf("walrust_txid = %d, %v; want 2", txid, err)
	}
	e.Put(0, e.Encode(3, 3))
	e.waitCaughtUp(db)
}

// TestBadInputPageSizeChange: the store restarts from a snapshot with
// another page size (the old L0 files gone); the replica re-bootstraps and
// serves the new database.
func TestBadInputPageSizeChange(t *testing.T) {
	e := newWorld(t, 4096, false)
	e.Ref.Insert(10)
	e.Commit() // 2
	db := e.follow()
	e.waitCaughtUp(db)
	if err := os.RemoveAll(filepath.Join(e.StoreDir, "ltx")); err != nil {
		t.Fatal(err)
	}
	e.Ref = worldtest.NewRefDB(t, filepath.Join(e.Dir, "primary2.db"), 1024)
	e.Pub.PageSize = 1024
	e.Ref.Insert(25)
	e.AdvanceRef() // 3
	e.Snapshot()
	e.Ref.Insert(5)
	e.Commit() // 4
	e.waitCaughtUp(db)
	var ps int
	if err := db.QueryRow("PRAGMA page_size").Scan(&ps); err != nil || ps != 1024 {
		t.Fatalf("page_size = %d, %v; want 1024", ps, err)
	}
	var ok string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity_check = %q, %v", ok, err)
	}
}

// TestBadInputForeignFile: a local file that exists with no state file is
// not walrust's; the open is refused and the file is not touched.
func TestBadInputForeignFile(t *testing.T) {
	e := newWorld(t, 4096, false)
	e.Ref.Insert(5)
	e.Commit()
	// A real SQLite database at the replica's path.
	before := e.Ref.Image()
	if err := os.WriteFile(e.Path, before, 0o644); err != nil {
		t.Fatal(err)
	}
	openFails(t, e.uri("source="+e.Source+"&timeout=20s"))
	if after, err := os.ReadFile(e.Path); err != nil || !bytes.Equal(after, before) {
		t.Fatalf("foreign file changed (%v)", err)
	}
	if !strings.Contains(e.Logs.String(), "not made by walrust") {
		t.Fatalf("log does not explain the refusal:\n%s", e.Logs)
	}
	for _, p := range []string{e.Path + "-replica-state", e.Path + "-replica-log", e.Path + "-replica-lock", e.Path + "-journal"} {
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("%s created next to a foreign file", p)
		}
	}
}

// TestBadInputStateSource: a replica follows the source its state file
// names. Another source is refused; no source reopens it.
func TestBadInputStateSource(t *testing.T) {
	e := newWorld(t, 4096, false)
	e.Ref.Insert(4)
	e.Commit()
	db := e.follow()
	e.waitCaughtUp(db)
	want := e.refRows()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	other := filepath.Join(e.Dir, "other-store")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	openFails(t, e.uri("source=file://"+other))
	if !strings.Contains(e.Logs.String(), "follows "+e.Source) {
		t.Fatalf("log does not name the replica's source:\n%s", e.Logs)
	}

	db = openDB(t, "file:"+e.Path+"?vfs=walrust")
	e.checkRows(db, want, "reopened without source")
	if st := status(t, db); st.Source != e.Source || st.Bootstraps != 0 {
		t.Fatalf("status %+v; want source %s and no bootstrap", st, e.Source)
	}
	// A trailing slash names the same source.
	db.Close()
	db = openDB(t, e.uri("source="+e.Source+"/"))
	e.checkRows(db, want, "reopened with a trailing slash")
}

// TestBadInputEnv: WALRUST_SOURCE, WALRUST_INTERVAL and WALRUST_TIMEOUT
// are defaults for URIs that do not say; URI parameters win; a bad value
// fails the open.
func TestBadInputEnv(t *testing.T) {
	e := newWorld(t, 4096, false)
	e.Ref.Insert(4)
	e.Commit()
	t.Setenv("WALRUST_SOURCE", e.Source)
	t.Setenv("WALRUST_INTERVAL", "30ms")
	db := openDB(t, "file:"+e.Path+"?vfs=walrust")
	e.waitCaughtUp(db)
	if st := status(t, db); st.Interval != "30ms" || st.Source != e.Source {
		t.Fatalf("status %+v; want interval 30ms from the environment", st)
	}
	e.Ref.Insert(2)
	e.Commit()
	e.waitCaughtUp(db)
	db.Close()

	db = openDB(t, e.uri("interval=40ms"))
	if st := status(t, db); st.Interval != "40ms" {
		t.Fatalf("interval %s; want the URI's 40ms", st.Interval)
	}
	db.Close()

	t.Setenv("WALRUST_INTERVAL", "banana")
	took := openFails(t, "file:"+e.Path+"?vfs=walrust")
	if took > 3*time.Second || !strings.Contains(e.Logs.String(), "banana") {
		t.Fatalf("bad WALRUST_INTERVAL: open took %s; log:\n%s", took, e.Logs)
	}
	t.Setenv("WALRUST_INTERVAL", "1ms")
	openFails(t, "file:"+e.Path+"?vfs=walrust")
	t.Setenv("WALRUST_INTERVAL", "")

	// WALRUST_TIMEOUT bounds the wait for a first snapshot.
	empty := filepath.Join(e.Dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("WALRUST_SOURCE", "file://"+empty)
	t.Setenv("WALRUST_TIMEOUT", "250ms")
	took = openFails(t, "file:"+filepath.Join(e.Dir, "new.db")+"?vfs=walrust&interval=20ms")
	if took < 250*time.Millisecond || took > 3*time.Second {
		t.Fatalf("open failed after %s; want about WALRUST_TIMEOUT=250ms", took)
	}
	t.Setenv("WALRUST_TIMEOUT", "soon")
	took = openFails(t, "file:"+filepath.Join(e.Dir, "new.db")+"?vfs=walrust")
	if took > 3*time.Second {
		t.Fatalf("bad WALRUST_TIMEOUT: open took %s", took)
	}
}

// TestSecondOpenOtherInterval: one follower serves every connection of a
// file, so a second open asking for another interval keeps the first's,
// and says so rather than ignoring it silently.
func TestSecondOpenOtherInterval(t *testing.T) {
	e := newWorld(t, 4096, false)
	db := e.follow() // interval=20ms
	second := openDB(t, e.uri("source="+e.Source+"&interval=1s"))
	if err := second.Ping(); err != nil {
		t.Fatalf("second open: %v", err)
	}
	const want = `msg="the replica is already followed here at another interval; keeping it"`
	line := logLine(e.Logs.String(), want)
	if !strings.Contains(line, "interval=20ms") || !strings.Contains(line, "ignored=1s") {
		t.Fatalf("no log line %s naming both intervals:\n%s", want, e.Logs)
	}
	e.Ref.Insert(1)
	e.Commit()
	e.waitCaughtUp(second) // at the first open's pace

	// An open that asks for no interval asks for no change: nothing to say.
	lines := strings.Count(e.Logs.String(), want)
	third := openDB(t, e.uri("source="+e.Source))
	if err := third.Ping(); err != nil {
		t.Fatalf("third open: %v", err)
	}
	if n := strings.Count(e.Logs.String(), want); n != lines {
		t.Fatalf("an open without interval= logged that its interval is ignored:\n%s", e.Logs)
	}
	db.Close()
}

// TestBadInputMaxSize: max_size= (WALRUST_MAX_SIZE) bounds the database a
// file may describe; a snapshot past it is rejected from its header, and a
// value that is not a size fails the open at once.
func TestBadInputMaxSize(t *testing.T) {
	e := newWorld(t, 4096, true)
	e.Ref.Insert(20) // well past 16 KiB
	e.AdvanceRef()
	e.Snapshot()
	openFails(t, e.followURI("&timeout=300ms&max_size=16KiB"))
	if !strings.Contains(e.Logs.String(), "exceeds the maximum size of 16384 bytes") {
		t.Fatalf("log does not say the snapshot exceeds max_size:\n%s", e.Logs)
	}
	nothingCreated(t, e.Path)

	took := openFails(t, e.uri("source="+e.Source+"&max_size=lots"))
	if took > 3*time.Second || !strings.Contains(e.Logs.String(), "max_size=lots") {
		t.Fatalf("max_size=lots: open took %s; log:\n%s", took, e.Logs)
	}
	t.Setenv("WALRUST_MAX_SIZE", "1GB")
	db := openDB(t, e.followURI(""))
	e.waitCaughtUp(db)
}

// TestExclusiveLockingModeNotApplied: in exclusive locking mode SQLite
// never ends a read transaction, which pinned the connection to one TXID
// for good (and held every page image behind it). The PRAGMA is answered
// with "normal", and the connection keeps following.
func TestExclusiveLockingModeNotApplied(t *testing.T) {
	e := newWorld(t, 4096, false)
	e.Ref.Insert(3)
	e.Commit()
	db := e.follow()
	e.waitCaughtUp(db)
	var mode string
	if err := db.QueryRow("PRAGMA locking_mode=EXCLUSIVE").Scan(&mode); err != nil || mode != "normal" {
		t.Fatalf("PRAGMA locking_mode=EXCLUSIVE: %q, %v; want normal", mode, err)
	}
	e.checkRows(db, e.refRows(), "in the mode it asked for")
	e.Ref.Insert(2)
	e.Commit()
	e.waitCaughtUp(db)
	if !strings.Contains(e.Logs.String(), "locking_mode=exclusive is not applied") {
		t.Fatalf("nothing logged about the refused mode:\n%s", e.Logs)
	}
}
