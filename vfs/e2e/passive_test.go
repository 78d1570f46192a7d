package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walrust/walrust/vfs/follow"
	"github.com/walrust/walrust/vfs/replica"
	"github.com/walrust/walrust/vfs/store"
)

// followElsewhere follows e's store into e's replica the way another
// process would: it holds the replica's lock file, so this process's VFS
// can only read the replica passively. stop ends it (so that this process
// may take over); cleanup stops it too.
func followElsewhere(t *testing.T, e *world) (stop func()) {
	t.Helper()
	r, err := replica.Open(e.Path, e.Source)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenFile(e.StoreDir)
	if err != nil {
		t.Fatal(err)
	}
	f := follow.Follow(r, st, follow.Options{Interval: 20 * time.Millisecond})
	stop = sync.OnceFunc(func() {
		f.Close()
		r.Close()
	})
	t.Cleanup(stop)
	if err := f.WaitReady(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	return stop
}

// TestPassiveOtherSourceRefused: a process that reads a replica another
// process follows (the passive, "reader" role) refuses a source= other than
// the replica's, as the follower role does, instead of serving the other
// store's data under the name it was asked for. Opened without source=,
// its status names the replica's source and the interval.
func TestPassiveOtherSourceRefused(t *testing.T) {
	e := newWorld(t, 4096, false)
	e.Ref.Insert(3)
	e.Commit()
	followElsewhere(t, e)

	other := filepath.Join(e.Dir, "other-store")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	openFails(t, e.uri("source=file://"+other+"&interval=20ms&timeout=2s"))
	line := logLine(e.Logs.String(), `msg="cannot open database"`)
	if !strings.Contains(line, "follows "+e.Source) || !strings.Contains(line, "not file://"+other) {
		t.Fatalf("the failed open's log line does not say which source the replica follows: %q", line)
	}

	db := openDB(t, e.uri("interval=20ms"))
	e.checkRows(db, e.refRows(), "read passively")
	st := status(t, db)
	if st.Source != e.Source || st.Interval != "20ms" {
		t.Errorf("status %+v; want source %s and interval 20ms", st, e.Source)
	}
	var raw string
	if err := db.QueryRow("PRAGMA walrust_status").Scan(&raw); err != nil || !strings.Contains(raw, `"role":"reader"`) {
		t.Errorf("status %s, %v: want the reader role", raw, err)
	}
}

// TestPassiveFailureLogged: when a passive reader cannot read (here the
// base file is marked as torn by a fold that died), the error SQLite
// reports comes with a log line that says why.
func TestPassiveFailureLogged(t *testing.T) {
	e := newWorld(t, 4096, false)
	e.Ref.Insert(3)
	e.Commit()
	followElsewhere(t, e)
	db := openDB(t, e.uri("interval=20ms"))
	e.checkRows(db, e.refRows(), "read passively")

	f, err := os.OpenFile(e.Path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	orig := make([]byte, 16)
	if _, err := f.ReadAt(orig, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("walrust:folding\x00"), 0); err != nil {
		t.Fatal(err)
	}
	mark := len(e.Logs.String())
	var txid int64
	err = db.QueryRow("PRAGMA walrust_txid").Scan(&txid)
	f.WriteAt(orig, 0)
	f.Close()
	if err == nil {
		t.Fatalf("walrust_txid on a torn base file: %d, no error", txid)
	}
	if log := e.Logs.String()[mark:]; !strings.Contains(log, "middle of a fold") {
		t.Errorf("error %q, and the log does not say why:\n%s", err, log)
	}
}
