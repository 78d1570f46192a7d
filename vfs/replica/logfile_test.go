package replica

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/testkit/worldtest"
)

// applyUnfolded commits n changes and applies their files without folding,
// as a process killed before its fold would.
func applyUnfolded(t *testing.T, w *world, r *Replica, n int) {
	t.Helper()
	for range n {
		w.Ref.Exec("INSERT INTO t (k, v) VALUES (?, ?)", fmt.Sprint(w.Pub.TXID), worldtest.Blob(int(w.Pub.TXID), 900))
		w.Commit()
		if _, err := applyFile(r, w.Encode(w.Pub.TXID, w.Pub.TXID)); err != nil {
			t.Fatal(err)
		}
	}
}

func logFilesOf(t *testing.T, w *world) []string {
	t.Helper()
	return mustGlob(t, filepath.Join(w.Path+"-replica-log", logFilePrefix+"*"+segmentExt))
}

// TestLogCutAtTornSegment: a restart that finds a torn segment in the
// middle of a log file drops it and what follows, and cuts the file there;
// what is appended after the restart (to a new file) survives the next
// restart, instead of being dropped behind the same torn segment again.
func TestLogCutAtTornSegment(t *testing.T) {
	w := newWorld(t, 1024, false)
	w.Snapshot()
	r := w.openReplica()
	mustStep(t, w.manual(r))
	applyUnfolded(t, w, r, 4) // TXIDs 2..5 in one log file
	r.Close()
	files := logFilesOf(t, w)
	if len(files) != 1 {
		t.Fatalf("log files %v, want one", files)
	}
	f, err := os.OpenFile(files[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	segs, _, err := readLogFile(&logFile{path: files[0], f: f})
	if err != nil || len(segs) != 4 {
		t.Fatalf("%d segments (%v), want 4", len(segs), err)
	}
	// Tear the segment of TXID 4.
	if _, err := f.WriteAt([]byte("torn"), segs[2].start+segmentHeaderSize+100); err != nil {
		t.Fatal(err)
	}
	f.Close()

	// The fold at the end of the open removes the file: look at it before,
	// as a fold that readers in other processes hold back would leave it.
	cut := int64(-1)
	testHook = func(stage string) {
		if fi, err := os.Stat(files[0]); stage == "fold:locked" && cut < 0 && err == nil {
			cut = fi.Size()
		}
	}
	r = w.openReplica()
	testHook = nil
	w.checkHead(r, 3, "torn segment dropped")
	if cut != segs[2].start {
		t.Fatalf("log file of %d bytes after the replay, want it cut at the torn segment (%d bytes)", cut, segs[2].start)
	}
	for txid := ltx.TXID(4); txid <= 5; txid++ {
		if _, err := applyFile(r, w.Encode(txid, txid)); err != nil {
			t.Fatal(err)
		}
	}
	r.Close()
	r = w.openReplica()
	defer r.Close()
	w.checkHead(r, 5, "segments appended after the cut")
	w.checkBase(5, "segments appended after the cut")
}

// TestLogOwnSegmentFiles: the segment files replicas wrote before log files
// (one segment each, named by its TXIDs, without a header) are replayed.
func TestLogOwnSegmentFiles(t *testing.T) {
	w := newWorld(t, 1024, false)
	w.Snapshot()
	r := w.openReplica()
	mustStep(t, w.manual(r))
	applyUnfolded(t, w, r, 3)
	r.Close()
	files := logFilesOf(t, w)
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(files[0])
	segs, _, err := readLogFile(&logFile{path: files[0], f: f})
	f.Close()
	if err != nil || len(segs) != 3 {
		t.Fatalf("%d segments (%v), want 3", len(segs), err)
	}
	// The old layout is a segment without its header.
	for _, s := range segs {
		name := fmt.Sprintf("%016x-%016x%s", uint64(s.meta.MinTXID), uint64(s.meta.MaxTXID), segmentExt)
		if err := os.WriteFile(filepath.Join(w.Path+"-replica-log", name), b[s.start+segmentHeaderSize:s.end], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(files[0])
	r = w.openReplica()
	defer r.Close()
	w.checkHead(r, 4, "replayed from old segment files")
	w.checkBase(4, "replayed from old segment files")
	if n := segments(t, r); n != 0 {
		t.Fatalf("%d files left in the log after the fold", n)
	}
}

// TestLogRotates: past logFileMax, segments go to a new log file; a restart
// replays them across files, and a fold removes every file.
func TestLogRotates(t *testing.T) {
	defer func(n int64) { logFileMax = n }(logFileMax)
	logFileMax = 4 << 10
	w := newWorld(t, 1024, false)
	w.Snapshot()
	r := w.openReplica()
	f := w.manual(r)
	mustStep(t, f)
	applyUnfolded(t, w, r, 6)
	if n := len(logFilesOf(t, w)); n < 3 {
		t.Fatalf("%d log files for 6 segments past %d bytes each", n, logFileMax)
	}
	r.Close()
	r = w.openReplica()
	defer r.Close()
	w.checkHead(r, 7, "replayed across log files")
	w.checkBase(7, "replayed across log files")
	if n := len(mustGlob(t, filepath.Join(w.Path+"-replica-log", "*"))); n != 0 {
		t.Fatalf("%d files left in the log after the fold", n)
	}
}
