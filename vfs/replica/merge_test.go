package replica

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/testkit/worldtest"
)

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// TestLongReaderBoundedSegments: behind a reader that never ends, every
// applied file used to keep a segment and a descriptor (3,000 files, 3,012
// descriptors). Merging keeps them bounded, and every version a reader
// pinned along the way still reads exactly its TXID.
func TestLongReaderBoundedSegments(t *testing.T) {
	w := newWorld(t, 1024, false)
	r, f := w.bootstrapped()
	oldest, err := r.Pin() // the reader that never ends
	if err != nil {
		t.Fatal(err)
	}
	fds := openFDs(t)
	pinned := map[ltx.TXID]*Version{oldest.TXID: oldest}
	const files, perStep = 600, 20
	maxSegments := 0
	for i := 0; i < files; i++ {
		// Mostly updates of a few rows, now and then a larger change.
		if i%50 == 0 {
			w.InsertRows(20, 900)
		} else {
			w.Ref.Exec("UPDATE t SET v = ? WHERE rowid = ?", worldtest.Blob(i, 300), 1+i%7)
		}
		w.Commit()
		if i%perStep == perStep-1 {
			mustStep(t, f)
			maxSegments = max(maxSegments, segments(t, r))
		}
		if i == 137 || i == 401 { // readers that start later and stay
			mustStep(t, f)
			v, err := r.Pin()
			if err != nil {
				t.Fatal(err)
			}
			pinned[v.TXID] = v
		}
	}
	mustStep(t, f)
	if maxSegments > 64 {
		t.Errorf("%d segments held behind a long reader after %d files", maxSegments, files)
	}
	if grew := openFDs(t) - fds; grew > 64 {
		t.Errorf("%d more descriptors open behind a long reader after %d files", grew, files)
	}
	t.Logf("at most %d segments for %d files; descriptors %d → %d", maxSegments, files, fds, openFDs(t))

	for txid, v := range pinned {
		checkVersion(t, v, w.Image(txid), fmt.Sprintf("reader pinned at TXID %d", txid))
	}
	w.checkHead(r, w.Pub.TXID, "head behind long readers")
	for _, v := range pinned {
		v.Unpin()
	}
	mustStep(t, f)
	w.checkBase(w.Pub.TXID, "after the readers end")
}

// TestMergeCrash: a crash after a merge wrote its segment and before it
// removed the run's leaves both in the log; a restart serves the newest
// TXID from them.
func TestMergeCrash(t *testing.T) {
	w := newWorld(t, 1024, false)
	r, f := w.bootstrapped()
	pin, err := r.Pin()
	if err != nil {
		t.Fatal(err)
	}
	saved := t.TempDir()
	testHook = func(stage string) {
		if stage != "merge:written" {
			return
		}
		// Keep a copy of every segment as it is now: the run's, not yet
		// removed.
		paths, err := listSegments(r.logDir)
		if err != nil {
			t.Error(err)
		}
		for _, p := range paths {
			if b, err := os.ReadFile(p); err == nil {
				os.WriteFile(filepath.Join(saved, filepath.Base(p)), b, 0o644)
			}
		}
	}
	defer func() { testHook = nil }()
	for i := range mergeFanIn + 3 {
		w.Ref.Exec("UPDATE t SET v = ? WHERE rowid = 1", worldtest.Blob(i, 500))
		if i == 0 {
			w.InsertRows(10, 700)
		}
		w.Commit()
		mustStep(t, f)
	}
	testHook = nil
	if n, _ := os.ReadDir(saved); len(n) == 0 {
		t.Fatal("no merge happened")
	}
	pin.Unpin()
	r.Close()
	// The crash: the run's segments are back beside the merged one. (In a
	// log file, they never left it: a file is removed only once all of
	// its segments are; the files still there are the same.)
	entries, _ := os.ReadDir(saved)
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(w.Path+"-replica-log", e.Name())); err == nil {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(saved, e.Name()))
		if err := os.WriteFile(filepath.Join(w.Path+"-replica-log", e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r2 := w.openReplica()
	defer r2.Close()
	w.checkHead(r2, w.Pub.TXID, "after a crash mid-merge")
	w.checkBase(w.Pub.TXID, "after a crash mid-merge")
}
