package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/s3test"
)

// A child process does one bootstrap or one download, so that its peak RSS
// (VmHWM) is that one job's. The parent passes the job in the environment.
const (
	childEnv      = "WALRUST_BENCH_CHILD"  // bootstrap | download | discard
	childSource   = "WALRUST_BENCH_SOURCE" // s3://bkt/prefix
	childEndpoint = "WALRUST_BENCH_ENDPOINT"
	childDir      = "WALRUST_BENCH_DIR" // where the replica or the download goes
	childProfile  = "WALRUST_BENCH_CPUPROFILE"
	childResult   = "BENCH-CHILD-RESULT "
)

type childOut struct {
	Seconds  float64  `json:"seconds"`
	HWMKiB   int64    `json:"vm_hwm_kib"` // peak RSS of the child
	StartKiB int64    `json:"start_rss_kib"`
	Bytes    int64    `json:"bytes"`
	Lazy     *lazyOut `json:"lazy,omitempty"` // the bootstrap children's lookups (lazy_test.go)
}

// TestBenchChild is the child's side; without the environment it does
// nothing.
func TestBenchChild(t *testing.T) {
	job := os.Getenv(childEnv)
	if job == "" {
		t.Skip("only run as a child of TestBench")
	}
	out := childOut{StartKiB: procStatusKiB("VmRSS")}
	if p := os.Getenv(childProfile); p != "" && job == "bootstrap" {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	src, ep, dir := os.Getenv(childSource), os.Getenv(childEndpoint), os.Getenv(childDir)
	ctx := context.Background()
	switch job {
	case "bootstrap", "lazy":
		// Time to a usable replica: open through the VFS (which, with
		// bootstrap=full, waits for the whole bootstrap) until the first
		// query answers; then lookups (lazy_test.go).
		mode := map[string]string{"bootstrap": "full", "lazy": "lazy"}[job]
		benchChildBoot(t, &out, src, ep, dir, mode)
	case "download", "discard":
		// One GET with walrust's own S3 client (the client is made, and
		// the object listed, before the clock starts), io.Copy to a file
		// that is then fsynced — or to io.Discard.
		pathStyle := true
		st, err := store.Open(ctx, src, store.Options{Endpoint: ep, PathStyle: &pathStyle})
		if err != nil {
			t.Fatal(err)
		}
		files, err := st.ListAfter(ctx, store.SnapshotLevel, 0)
		if err != nil || len(files) != 1 {
			t.Fatalf("list snapshots: %v, %v", files, err)
		}
		start := time.Now()
		rc, err := st.Open(ctx, files[0])
		if err != nil {
			t.Fatal(err)
		}
		var w io.Writer = io.Discard
		var f *os.File
		if job == "download" {
			if f, err = os.Create(filepath.Join(dir, "download.ltx")); err != nil {
				t.Fatal(err)
			}
			w = f
		}
		if out.Bytes, err = io.Copy(w, rc); err != nil {
			t.Fatal(err)
		}
		rc.Close()
		if f != nil {
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
		out.Seconds = time.Since(start).Seconds()
		out.HWMKiB = procStatusKiB("VmHWM")
	default:
		t.Fatalf("unknown child job %q", job)
	}
	b, _ := json.Marshal(out)
	fmt.Printf("\n%s%s\n", childResult, b)
}

// procStatusKiB reads one "Name: N kB" line of /proc/self/status.
func procStatusKiB(name string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && k == name {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// runChild runs this test binary as a child doing job, in a fresh
// directory that is removed afterwards.
func (b *bench) runChild(job, source, endpoint string) childOut {
	t := b.t
	t.Helper()
	dir, err := os.MkdirTemp(b.dir, "child-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	// Every child starts on a disk with nothing dirty: what the data
	// generation or the previous child wrote would otherwise still be
	// going out, and slow whichever child came first by up to 2× (the 1
	// GiB rows swung from 1.1 s to 2.9 s).
	unix.Sync()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+job, childSource+"="+source, childEndpoint+"="+endpoint, childDir+"="+dir)
	if *childProf != "" {
		cmd.Env = append(cmd.Env, childProfile+"="+*childProf)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("child %s %s: %v\n%s\n%s", job, source, err, stdout, stderr.String())
	}
	for _, line := range strings.Split(string(stdout), "\n") {
		if js, ok := strings.CutPrefix(line, childResult); ok {
			var out childOut
			if err := json.Unmarshal([]byte(js), &out); err != nil {
				t.Fatalf("child %s: %v", job, err)
			}
			return out
		}
	}
	t.Fatalf("child %s %s printed no result:\n%s\n%s", job, source, stdout, stderr.String())
	return childOut{}
}

// bootstrap measures the time from opening a replica that does not exist
// yet to its first answer, against merely downloading the same snapshot
// from the same versitygw, each in a child process whose peak RSS is
// recorded; at two database sizes, interleaved.
func (b *bench) bootstrap(d *data) {
	t := b.t
	srv := s3test.Start(t, "bkt")
	srv.Env(t)
	type result struct {
		boot, down, discard []childOut
		lazy                []childOut // bootstrap=lazy
		peer                []peerOut  // the Litestream VFS's cold start (-peer)
	}
	res := map[int]*result{}
	for _, mb := range b.cfg.bootMB {
		x := d.db(mb)
		dst := filepath.Join(srv.Dir, "bkt", fmt.Sprintf("boot%d", mb), fmt.Sprintf("%04x", store.SnapshotLevel), snapName)
		if err := link(x.snap, dst); err != nil {
			t.Fatal(err)
		}
		res[mb] = &result{}
	}
	reps := b.cfg.scaled(b.cfg.bootReps)
	for i := range reps {
		for _, mb := range b.cfg.bootMB {
			src := srv.URL("bkt", fmt.Sprintf("boot%d", mb))
			r := res[mb]
			boot := func() {
				r.boot = append(r.boot, b.runChild("bootstrap", src, srv.Endpoint))
				r.lazy = append(r.lazy, b.runChild("lazy", src, srv.Endpoint))
			}
			down := func() {
				r.down = append(r.down, b.runChild("download", src, srv.Endpoint))
				r.discard = append(r.discard, b.runChild("discard", src, srv.Endpoint))
			}
			if i%2 == 0 {
				boot()
				down()
			} else {
				down()
				boot()
			}
			if b.peerOn() {
				r.peer = append(r.peer, b.peerCold(srv, "bkt", fmt.Sprintf("boot%d", mb)))
			}
			b.logf("bootstrap %d MiB, rep %d: %s (peak RSS %d MiB); download %s (peak RSS %d MiB); to io.Discard %s",
				mb, i+1, fmtSec(r.boot[i].Seconds), r.boot[i].HWMKiB>>10, fmtSec(r.down[i].Seconds), r.down[i].HWMKiB>>10, fmtSec(r.discard[i].Seconds))
		}
	}
	secs := func(xs []childOut) []float64 {
		var out []float64
		for _, x := range xs {
			out = append(out, x.Seconds)
		}
		return out
	}
	peak := func(xs []childOut) float64 {
		var m int64
		for _, x := range xs {
			m = max(m, x.HWMKiB)
		}
		return float64(m) / 1024
	}
	for _, mb := range b.cfg.bootMB {
		r := res[mb]
		x := d.db(mb)
		bt, dt, xt := median(secs(r.boot)), median(secs(r.down)), median(secs(r.discard))
		b.add(row{
			group:    "bootstrap",
			what:     fmt.Sprintf("%d MiB database (%.0f MiB snapshot) from versitygw to first query (n=%d)", mb, float64(x.snapSize)/(1<<20), len(r.boot)),
			walrust:  fmt.Sprintf("%s (%.0f MiB/s of database)", fmtSec(bt), float64(x.pages)*4096/(1<<20)/bt),
			baseline: fmt.Sprintf("%s: one GET, io.Copy to a file + fsync (to io.Discard: %s)", fmtSec(dt), fmtSec(xt)),
			a:        bt, b: dt,
			target: "≤ 1.3", meets: meets(bt <= 1.3*dt),
			peer: peerColdCell(r.peer),
		})
		b.lazyRows(mb, float64(x.snapSize)/(1<<20), r.lazy, r.boot, r.down, peerColdCell(r.peer))
	}
	small, large := b.cfg.bootMB[0], b.cfg.bootMB[len(b.cfg.bootMB)-1]
	bs, bl := peak(res[small].boot), peak(res[large].boot)
	ds, dl := peak(res[small].down), peak(res[large].down)
	b.add(row{
		group:    "bootstrap",
		what:     fmt.Sprintf("peak RSS of the process (VmHWM), %d MiB vs %d MiB database", large, small),
		walrust:  fmt.Sprintf("%.0f MiB vs %.0f MiB", bl, bs),
		baseline: fmt.Sprintf("download child: %.0f MiB vs %.0f MiB", dl, ds),
		a:        bl, b: bs,
		target: "flat (≤ 1.1)", meets: meets(bl <= 1.1*bs),
	})
}

// peerColdCell is the Litestream VFS's cold start: it downloads no
// snapshot (it reads each page from the store when SQLite asks for it), so
// its first query is quick and every later read pays for it.
func peerColdCell(xs []peerOut) string {
	if len(xs) == 0 {
		return ""
	}
	var s []float64
	var hwm int64
	for _, x := range xs {
		s = append(s, x.Seconds)
		hwm = max(hwm, x.HWMKiB)
	}
	return fmt.Sprintf("open → first query %s (python3 child, n=%d, peak RSS %d MiB; it downloads nothing first: pages come from the store as SQLite reads them)",
		fmtSec(median(s)), len(xs), hwm>>10)
}
