package replica

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// The hydration crash test kills a child process (this test binary, run as
// TestHydrateCrashChild) with SIGKILL at random moments of a lazy
// bootstrap — fetching the index, serving demand reads, streaming,
// checkpointing, installing — over and over, then lets one run finish.
// Each restart must resume from the last checkpoint (never lose pages it
// recorded), and the end must be the snapshot exactly, passing
// integrity_check as a plain database.
const (
	hydrateChildEnv  = "WALRUST_HYDRATE_CHILD"  // the replica path; set only in the child
	hydrateSourceEnv = "WALRUST_HYDRATE_SOURCE" // the store directory
)

// TestHydrateCrashChild is the child side of TestHydrateCrash: it
// bootstraps the replica lazily (or resumes), with readers demanding
// pages meanwhile and a stream slowed down so that kills land mid-way,
// then installs it and exits 0.
func TestHydrateCrashChild(t *testing.T) {
	path := os.Getenv(hydrateChildEnv)
	if path == "" {
		t.Skip("the child process of TestHydrateCrash")
	}
	checkpointEvery = 64 << 10
	dir := os.Getenv(hydrateSourceEnv)
	r, err := Open(path, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Head() != nil {
		return // installed by an earlier run
	}
	st, err := store.OpenFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	snaps, err := st.ListAfter(ctx, store.SnapshotLevel, 0)
	if err != nil || len(snaps) != 1 {
		t.Fatalf("snapshots: %v %v", snaps, err)
	}
	fi := snaps[0]
	fetch := func(ctx context.Context, off, n int64) (io.ReadCloser, error) {
		rc, err := st.OpenRange(ctx, fi, off, n)
		if err != nil {
			return nil, err
		}
		return slowBody{rc}, nil
	}
	h, ck, err := r.BeginHydration(LazySnapshot{Want: want(fi), Fetch: fetch, Ctx: ctx})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("hydrating from page %d\n", ck.next)
	v, err := r.Pin()
	if err != nil {
		t.Fatal(err)
	}
	go func() { // a reader, demanding pages at random while the stream runs
		buf := make([]byte, v.PageSize)
		for {
			pgno := rand.Int64N(int64(v.Commit))
			if _, err := v.ReadAt(buf, pgno*int64(v.PageSize)); err != nil {
				return
			}
		}
	}()
	h.Run(ck)
	if err := h.Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.InstallHydrated(h); err != nil {
		t.Fatal(err)
	}
}

// slowBody makes the stream take long enough to be killed mid-way: 1 ms
// per 16 KiB.
type slowBody struct{ io.ReadCloser }

func (s slowBody) Read(p []byte) (int, error) {
	time.Sleep(time.Millisecond)
	return s.ReadCloser.Read(p[:min(len(p), 16<<10)])
}

func TestHydrateCrash(t *testing.T) {
	w := newWorld(t, 4096, false)
	w.InsertRows(600, 5000) // about 3 MiB, incompressible
	txid := w.AdvanceRef()
	w.Snapshot()
	var out *testtool.Buffer
	run := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHydrateCrashChild$")
		cmd.Env = append(os.Environ(), hydrateChildEnv+"="+w.Path, hydrateSourceEnv+"="+w.StoreDir)
		out = &testtool.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	pages := uint32(len(w.Image(txid)) / 4096)
	if hy, err := InspectHydration(w.Path); hy != nil || err != nil {
		t.Fatalf("InspectHydration before any: %+v, %v; want none", hy, err)
	}
	kills, mid, installs := 0, 0, 0
	var next uint32
	for kills < 25 {
		cmd := run()
		time.Sleep(time.Duration(rand.IntN(250)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		var exit *exec.ExitError
		if err != nil && (!errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL) {
			t.Fatalf("run %d ended with %v before the kill:\n%s", kills+1, err, tail(out.String(), 4000))
		}
		if _, serr := os.Stat(w.Path); err == nil || serr == nil {
			// It installed the image before the kill (or finished): the
			// file must be the snapshot exactly; then start over from
			// nothing, so that every counted kill lands in a hydration.
			// An Open finishes an install the kill interrupted (after the
			// rename, before the state's TXID).
			r := w.openReplica()
			w.checkHead(r, txid, "installed before a kill")
			r.Close()
			w.checkBase(txid, "installed before a kill")
			integrityCheck(t, w.Path, "installed before a kill")
			removeReplica(t, w.Path)
			next = 0
			installs++
			continue
		}
		kills++
		cks, _ := filepath.Glob(filepath.Join(w.Path+"-replica-log", hydratePrefix+"*"+checkpointExt))
		if len(cks) == 1 {
			ck, err := readCheckpoint(cks[0])
			if err != nil {
				t.Fatalf("kill %d: checkpoint: %v", kills, err)
			}
			if ck.next < next {
				t.Fatalf("kill %d: the checkpoint went back from page %d to %d: verified pages lost\n%s", kills, next, ck.next, out)
			}
			if ck.next > 1 {
				mid++
			}
			next = ck.next
			// What walrust status --local shows of it.
			hy, err := InspectHydration(w.Path)
			if err != nil || hy == nil {
				t.Fatalf("kill %d: InspectHydration: %v, %v", kills, hy, err)
			}
			if hy.TXID != txid || hy.PagesLocal != ck.next-1 || hy.Following || ck.next > 1 && hy.Pages != pages {
				t.Fatalf("kill %d: inspected %+v; want TXID %d, %d of %d pages local, no follower running", kills, *hy, txid, ck.next-1, pages)
			}
		}
	}
	if mid < 5 {
		t.Fatalf("only %d of %d kills landed after a checkpoint: the test does not test resuming", mid, kills)
	}
	cmd := run()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the last run: %v\n%s", err, tail(out.String(), 4000))
	}
	w.checkBase(txid, "after the crashes")
	integrityCheck(t, w.Path, "after the crashes")
	r := w.openReplica()
	defer r.Close()
	w.checkHead(r, txid, "after the crashes")
	t.Logf("%d kills during a hydration, %d of them after a checkpoint; %d runs installed before their kill", kills, mid, installs)
}

// removeReplica removes every file of a replica.
func removeReplica(t *testing.T, path string) {
	for _, p := range []string{path, path + "-replica-state", path + "-replica-lock"} {
		os.Remove(p)
	}
	if err := os.RemoveAll(path + "-replica-log"); err != nil {
		t.Fatal(err)
	}
}
