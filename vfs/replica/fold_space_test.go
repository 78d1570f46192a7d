package replica

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/walrust/walrust/vfs/store"
)

// A fold that runs out of disk must leave a file that SQLite can read (at
// the old TXID), and a replica that opens again. The disk is filled for a
// child process only, by its file size limit (RLIMIT_FSIZE: writes past it
// fail with EFBIG, as they would with ENOSPC).

const foldSpaceChildEnv = "WALRUST_FOLD_SPACE_CHILD" // "path,source,limit"; set only in the child

// TestFoldNoSpaceChild is the child side of TestFoldNoSpace: under the
// limit it opens the replica (whose open folds a staged re-bootstrap that
// needs a bigger file) and reports what it serves.
func TestFoldNoSpaceChild(t *testing.T) {
	parts := limitedChild(t, foldSpaceChildEnv)
	r, err := Open(parts[0], parts[1])
	if err != nil {
		t.Fatalf("open after a fold that ran out of space: %v", err)
	}
	defer r.Close()
	if r.openFoldErr == nil {
		t.Fatal("the fold at open did not fail: the test's limit is wrong")
	}
	fmt.Printf("fold error: %v\nserving TXID %d\n", r.openFoldErr, r.Head().TXID)
}

// limitedChild is the start of a child process test: its arguments from
// env ("a,b,limit"; the test skips when env is unset, in a normal run),
// and the file size limit set for the rest of the process.
func limitedChild(t *testing.T, env string) []string {
	arg := os.Getenv(env)
	if arg == "" {
		t.Skip("the child process of another test")
	}
	parts := strings.SplitN(arg, ",", 3)
	limit, _ := strconv.ParseUint(parts[2], 10, 64)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: limit, Max: limit}); err != nil {
		t.Fatal(err)
	}
	return parts
}

func TestFoldNoSpace(t *testing.T) {
	w := newWorld(t, 512, true)
	r, _ := w.bootstrapped()
	base, err := os.Stat(w.Path)
	if err != nil {
		t.Fatal(err)
	}
	// The primary grows well past the base file, and the replica gets
	// its snapshot as a re-bootstrap: staged, to be folded into the file.
	w.InsertRows(40, 2000)
	txid := w.Advance(w.Ref.Image())
	st, err := stageFile(r, w.Encode(1, txid))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Install(st); err != nil {
		t.Fatal(err)
	}
	r.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestFoldNoSpaceChild$", "-test.v")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%s,%d", foldSpaceChildEnv, w.Path, w.Source, base.Size()+4096))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte(fmt.Sprintf("serving TXID %d", txid))) {
		t.Fatalf("the child does not serve TXID %d:\n%s", txid, out)
	}
	t.Logf("child:\n%s", out)

	// The file is whole at the old TXID: SQLite's magic, not the fold's mark.
	hdr := make([]byte, 16)
	f, err := os.Open(w.Path)
	if err != nil {
		t.Fatal(err)
	}
	f.ReadAt(hdr, 0)
	f.Close()
	if string(hdr) != sqliteMagic {
		t.Fatalf("after a fold that ran out of space the file starts %q: plain SQLite cannot read it", hdr)
	}
	w.checkBase(1, "after the failed fold")

	// With room again, the next open folds.
	r2 := w.openReplica()
	defer r2.Close()
	w.checkHead(r2, txid, "after the fold")
	w.checkBase(txid, "after the fold")
}

const stageSpaceChildEnv = "WALRUST_STAGE_SPACE_CHILD" // "path,storeDir,limit"; set only in the child

// TestStageNoSpaceChild is the child side of TestStageNoSpace: under the
// limit it bootstraps, which cannot write the snapshot, and reports how
// the follower took it.
func TestStageNoSpaceChild(t *testing.T) {
	parts := limitedChild(t, stageSpaceChildEnv)
	st, err := store.OpenFile(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(parts[0], "file://"+parts[1])
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	err = (&feeder{r: r, st: st}).step(context.Background())
	fmt.Printf("step: %v\nrejected: %v\n", err, errors.Is(err, ErrCorrupt))
}

// TestStageNoSpace: a snapshot that the disk cannot take (here a file size
// limit, as with ENOSPC) is a local failure, never a corrupt file; the
// same snapshot bootstraps once there is room.
func TestStageNoSpace(t *testing.T) {
	w := newWorld(t, 512, true)
	w.InsertRows(40, 2000)
	w.Advance(w.Ref.Image())
	w.Snapshot()
	cmd := exec.Command(os.Args[0], "-test.run=^TestStageNoSpaceChild$", "-test.v")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%s,%d", stageSpaceChildEnv, w.Path, w.StoreDir, 16<<10))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("file too large")) || !bytes.Contains(out, []byte("rejected: false")) {
		t.Fatalf("a snapshot the disk could not take failed otherwise, or was taken for a corrupt file:\n%s", out)
	}
	r := w.openReplica()
	defer r.Close()
	f := w.manual(r)
	mustStep(t, f)
	w.checkHead(r, w.Pub.TXID, "after the disk has room")
}
