package bench

import (
	"bufio"
	"database/sql"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/walrust/walrust/vfs"
)

var (
	fullFlag    = flag.Bool("full", false, "run every scenario at full size and print the Markdown table on stdout (make bench)")
	onlyFlag    = flag.String("only", "", "comma-separated scenarios to run: reads,lag,bootstrap,apply,idle,fleet,publish (default: all)")
	childProf   = flag.String("child-cpuprofile", "", "write a CPU profile of each walrust bootstrap child to this path (the last one wins)")
	outFlag     = flag.String("out", "", "with -full, write the table to this file instead of stdout")
	samplesFlag = flag.Float64("samples", 1, "scale the number of samples of every scenario by this factor")
	bootMBFlag  = flag.String("boot-mb", "", "comma-separated database sizes in MiB for the bootstrap scenario, instead of the run's (e.g. 256,1024)")
)

func TestMain(m *testing.M) {
	if err := vfs.Register(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// config sizes one run. smoke() is what `go test` runs; full() is make bench.
type config struct {
	name string

	// reads
	readMB      int // the database read by both VFSes, and the large bootstrap snapshot
	readPairs   int // interleaved samples per read case (full scans: scanPairs)
	scanPairs   int
	lookupsWarm int // point lookups per warm sample
	lookupsCold int // point lookups per cold sample (one new connection each)
	rangesWarm  int // range scans per sample
	rangesCold  int
	rangeRows   int64
	unfolded    int // versions applied behind a long read transaction
	// samples per read case in the peer's children (-peer): the Litestream
	// VFS is two orders of magnitude slower, so it gets fewer
	peerPairs, peerScanPairs int

	// lag
	lagIntervals []time.Duration
	lagSamples   int

	// bootstrap
	bootMB   []int // snapshot sizes
	bootReps int

	// apply
	applyFiles, applyPages, applyReps int

	// idle
	idleInterval time.Duration
	idlePolls    int
	// idle, backing off: interval, max_interval, and the window counted
	backoffInterval, backoffMax, backoffWindow time.Duration

	// fleet: replica counts, and their poll interval
	fleetSizes    []int
	fleetInterval time.Duration

	// publish: database sizes, the interval of both publishers, how long
	// the updates run, and the size that also gets the insert burst
	pubMB                     []int
	pubInterval               time.Duration
	pubUpdateFor, pubBurstFor time.Duration
	pubBurstMB                int
}

func smoke() config {
	return config{
		name:   "smoke",
		readMB: 4, readPairs: 2, scanPairs: 1,
		lookupsWarm: 50, lookupsCold: 20, rangesWarm: 5, rangesCold: 2, rangeRows: 100, unfolded: 20,
		peerPairs: 1, peerScanPairs: 1,
		lagIntervals: []time.Duration{50 * time.Millisecond}, lagSamples: 3,
		bootMB: []int{1, 4}, bootReps: 1,
		applyFiles: 20, applyPages: 10, applyReps: 1,
		idleInterval: 30 * time.Millisecond, idlePolls: 4,
		backoffInterval: 20 * time.Millisecond, backoffMax: 200 * time.Millisecond, backoffWindow: 2 * time.Second,
		fleetSizes: []int{5, 20}, fleetInterval: 100 * time.Millisecond,
		pubMB: []int{4}, pubInterval: 200 * time.Millisecond, pubUpdateFor: 2 * time.Second, pubBurstFor: time.Second, pubBurstMB: 4,
	}
}

func full() config {
	return config{
		name:   "full",
		readMB: 256, readPairs: 40, scanPairs: 6,
		lookupsWarm: 2000, lookupsCold: 200, rangesWarm: 20, rangesCold: 5, rangeRows: 1000, unfolded: 1000,
		peerPairs: 5, peerScanPairs: 3,
		lagIntervals: []time.Duration{100 * time.Millisecond, time.Second}, lagSamples: 100,
		bootMB: []int{64, 256, 1024}, bootReps: 5, // 1 GiB: issue 15's lazy rows; about 60 s more. 5: a 64 MiB child takes ~0.1 s, and 3 medians swung ±30%
		applyFiles: 2000, applyPages: 10, applyReps: 3,
		idleInterval: 100 * time.Millisecond, idlePolls: 30,
		backoffInterval: 100 * time.Millisecond, backoffMax: 2 * time.Second, backoffWindow: 30 * time.Second,
		fleetSizes: []int{10, 100, 1000}, fleetInterval: time.Second,
		pubMB: []int{20, 200, 1024}, pubInterval: time.Second, pubUpdateFor: time.Minute, pubBurstFor: 20 * time.Second, pubBurstMB: 200,
	}
}

func (c config) scaled(n int) int { return max(1, int(math.Round(float64(n)**samplesFlag))) }

// row is one line of the table: what walrust did, what the baseline measured
// in the same run did, and their ratio.
type row struct {
	group    string // reads, lag, bootstrap, apply, idle
	what     string
	walrust  string
	baseline string
	a, b     float64 // the two numbers behind the ratio (walrust, baseline); both > 0 when sane
	ratio    float64 // a / b
	noise    string  // spread of the per-pair ratios, when there are pairs
	target   string
	meets    string // "yes", "no", or "" when there is no target

	// Read rows have a second baseline (the rollback-mode copy; the first
	// is the WAL-mode copy) and are shown in a table of their own.
	base2  string
	ratio2 float64
	noise2 string

	// peer is the Litestream VFS's figure for the same scenario, measured
	// in the same run ("" when it has none).
	peer string
}

type bench struct {
	t          *testing.T
	peerSQLite string // the SQLite of the peer's python3 children, once one ran
	cfg        config
	dir        string
	rows       []row
}

func (b *bench) want(s string) bool {
	if *onlyFlag == "" {
		return true
	}
	return slices.Contains(strings.Split(*onlyFlag, ","), s)
}

// logf reports progress: on stderr in a full run (stdout is the table), in
// the test log otherwise.
func (b *bench) logf(format string, args ...any) {
	b.t.Helper()
	if *fullFlag {
		fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	} else {
		b.t.Logf(format, args...)
	}
}

// TestBench runs every scenario: at full size with -full (make bench), at a
// tiny size otherwise, where it checks only that each row has sane numbers
// (it never asserts on timings).
func TestBench(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		t.Skip("a child process")
	}
	cfg := smoke()
	if *fullFlag {
		cfg = full()
	} else if testing.Short() {
		t.Skip("-short")
	}
	if *bootMBFlag != "" {
		cfg.bootMB = nil
		for _, f := range strings.Split(*bootMBFlag, ",") {
			mb, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || mb <= 0 {
				t.Fatalf("-boot-mb %q: want sizes in MiB, comma-separated", *bootMBFlag)
			}
			cfg.bootMB = append(cfg.bootMB, mb)
		}
	}
	b := &bench{t: t, cfg: cfg, dir: t.TempDir()}
	start := time.Now()
	m := machine()
	b.logf("%s run; %s", cfg.name, m)
	d := b.prepare()
	if b.want("reads") {
		b.reads(d)
	}
	if b.want("lag") {
		b.lag()
	}
	if b.want("bootstrap") {
		b.bootstrap(d)
	}
	if b.want("apply") {
		b.apply(d)
	}
	if b.want("idle") {
		b.idle()
	}
	if b.want("fleet") {
		b.fleet()
	}
	if b.want("publish") {
		b.publish()
	}
	out := b.table(d, m, time.Since(start))
	if *fullFlag && *outFlag != "" {
		if err := os.WriteFile(*outFlag, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	} else if *fullFlag {
		fmt.Print(out)
	} else {
		t.Log("\n" + out)
	}
	for _, r := range b.rows {
		if r.base2 != "" && (!(r.ratio2 > 0) || math.IsInf(r.ratio2, 0)) {
			t.Errorf("%s / %s: not a sane measurement against the second baseline: %s, ratio %v", r.group, r.what, r.base2, r.ratio2)
		}
		if !(r.a > 0) || !(r.b > 0) || !(r.ratio > 0) || math.IsInf(r.ratio, 0) || math.IsNaN(r.ratio) {
			t.Errorf("%s / %s: not a sane measurement: walrust %v (%s), baseline %v (%s), ratio %v",
				r.group, r.what, r.a, r.walrust, r.b, r.baseline, r.ratio)
		}
	}
	if len(b.rows) == 0 {
		t.Errorf("no scenario ran (-only %q)", *onlyFlag)
	}
}

func (b *bench) add(r row) {
	if r.b != 0 {
		r.ratio = r.a / r.b
	}
	b.rows = append(b.rows, r)
	b.logf("%-9s %-58s %s | %s | ratio %.2f %s", r.group, r.what, r.walrust, r.baseline, r.ratio, r.noise)
	if r.base2 != "" {
		b.logf("%-9s %-58s   | %s | ratio %.2f %s", "", "", r.base2, r.ratio2, r.noise2)
	}
	if r.peer != "" {
		b.logf("%-9s %-58s   | peer: %s", "", "", r.peer)
	}
}

// peerHead names the peer column.
const peerHead = "Litestream v0.5.18 VFS (same run)"

// table is the Markdown the README shows: the read rows, each against both
// of SQLite's own baselines and the peer, then every other row.
func (b *bench) table(d *data, m string, took time.Duration) string {
	var s strings.Builder
	if b.peerSQLite != "" {
		m += fmt.Sprintf("; peer children: %s with SQLite %s", peerPython, b.peerSQLite)
	}
	fmt.Fprintf(&s, "Machine: %s\n\n", m)
	withNoise := func(r float64, noise string) string {
		if noise == "" {
			return fmt.Sprintf("%.2f", r)
		}
		return fmt.Sprintf("%.2f %s", r, noise)
	}
	var reads, rest []row
	for _, r := range b.rows {
		if r.base2 != "" {
			reads = append(reads, r)
		} else {
			rest = append(rest, r)
		}
	}
	if len(reads) > 0 {
		fmt.Fprintf(&s, "| reads | walrust | default VFS, WAL-mode copy | walrust ÷ WAL copy | default VFS, rollback-mode copy | walrust ÷ rollback copy | %s | target (÷ WAL copy) | meets |\n", peerHead)
		fmt.Fprintf(&s, "|---|---|---|---|---|---|---|---|---|\n")
		for _, r := range reads {
			fmt.Fprintf(&s, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.what, r.walrust, r.baseline,
				withNoise(r.ratio, r.noise), r.base2, withNoise(r.ratio2, r.noise2), dash(r.peer), r.target, r.meets)
		}
		fmt.Fprintf(&s, "\n")
	}
	if len(rest) > 0 {
		fmt.Fprintf(&s, "| scenario | walrust | baseline (same run, interleaved) | ratio | target | meets | %s |\n", peerHead)
		fmt.Fprintf(&s, "|---|---|---|---|---|---|---|\n")
		for _, r := range rest {
			fmt.Fprintf(&s, "| %s: %s | %s | %s | %s | %s | %s | %s |\n", r.group, r.what, r.walrust, r.baseline,
				withNoise(r.ratio, r.noise), r.target, r.meets, dash(r.peer))
		}
	}
	fmt.Fprintf(&s, "\n%s\n", d.describe(b.cfg))
	fmt.Fprintf(&s, "Whole run: %s.\n", took.Round(time.Second))
	return s.String()
}

func dash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// machine is the line that says what the numbers were measured on.
func machine() string {
	model := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	kernel := "?"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	sqliteVersion := "?"
	if db, err := sql.Open("sqlite3", ":memory:"); err == nil {
		_ = db.QueryRow("SELECT sqlite_version()").Scan(&sqliteVersion)
		db.Close()
	}
	mem := "?"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf("%.0f GiB RAM", float64(kb)/(1<<20))
		}
	}
	return fmt.Sprintf("%s, %d cores, %s, Linux %s, %s %s/%s, SQLite %s (mattn/go-sqlite3), versitygw v1.8.0 on loopback",
		model, runtime.NumCPU(), mem, kernel, runtime.Version(), runtime.GOOS, runtime.GOARCH, sqliteVersion)
}
