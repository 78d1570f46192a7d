package replica

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/testtool"
	"github.com/walrust/walrust/vfs/testkit/worldtest"
)

// The crash test runs a replica fed by the store in a child process (this test binary,
// re-executed to run TestCrashChild) and kills it with SIGKILL again and
// again while the parent publishes. The child reports every step it
// reaches (testHook) on a pipe, so the parent knows where each kill landed,
// and can be told to pause at one step so that a kill lands there on
// purpose.
const (
	crashChildEnv  = "WALRUST_CRASH_CHILD"  // the replica path; set only in the child
	crashSourceEnv = "WALRUST_CRASH_SOURCE" // the store directory
	crashPauseEnv  = "WALRUST_CRASH_PAUSE"  // a step to pause at
	crashPause     = 5 * time.Second        // long enough for the parent's kill
)

// TestCrashChild is the child side of TestCrash; it does nothing in a
// normal run. It opens the replica, follows the store every 2ms, and
// reports each step on descriptor 3, until its stdin closes (a clean stop)
// or it is killed.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("the child process of TestCrash")
	}
	steps := os.NewFile(3, "steps")
	pause := os.Getenv(crashPauseEnv)
	testHook = func(stage string) {
		steps.WriteString(stage + "\n") // unbuffered: in the pipe before the step runs
		if stage == pause {
			time.Sleep(crashPause)
		}
	}
	hook("open:start")
	r, err := Open(path, "file://"+os.Getenv(crashSourceEnv))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	hook("open:done")
	st, err := store.OpenFile(os.Getenv(crashSourceEnv))
	if err != nil {
		t.Fatal(err)
	}
	// An error that says the store's content is corrupt is the replica's
	// bug after a crash: logged at ERROR, which fails the parent.
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		feedUntil(ctx, &feeder{r: r, st: st}, 2*time.Millisecond, func(err error) {
			if errors.Is(err, ErrCorrupt) {
				log.Error("rejected", "err", err)
			} else {
				log.Warn("step failed", "err", err)
			}
		})
	}()
	io.Copy(io.Discard, os.Stdin) // until the parent closes it
	cancel()
	<-fed
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	hook("closed")
}

// crashChild is one run of the child process.
type crashChild struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	steps  chan string
	output testtool.Buffer
	last   string // the last step read from the pipe
	done   chan error
}

func startCrashChild(t *testing.T, w *world, pause string) *crashChild {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &crashChild{t: t, steps: make(chan string, 4096), done: make(chan error, 1)}
	c.cmd = exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
	c.cmd.Env = append(os.Environ(), crashChildEnv+"="+w.Path, crashSourceEnv+"="+w.StoreDir, crashPauseEnv+"="+pause)
	c.cmd.ExtraFiles = []*os.File{pw}
	c.cmd.Stdout, c.cmd.Stderr = &c.output, &c.output
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			c.steps <- sc.Text()
		}
		pr.Close()
		close(c.steps)
	}()
	go func() { c.done <- c.cmd.Wait() }()
	t.Cleanup(func() { c.cmd.Process.Kill() })
	return c
}

// poll reads the steps reported so far without waiting; it returns false
// once the child has closed its end (it exited).
func (c *crashChild) poll(until string) (seen bool, alive bool) {
	for {
		select {
		case s, ok := <-c.steps:
			if !ok {
				return false, false
			}
			c.last = s
			if s == until {
				return true, true
			}
		default:
			return false, true
		}
	}
}

// kill sends SIGKILL, waits for the process, and returns the step it was
// in: the last one it reported.
func (c *crashChild) kill() string {
	c.t.Helper()
	c.cmd.Process.Signal(syscall.SIGKILL)
	err := <-c.done
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		c.t.Fatalf("child ended with %v before the kill; output:\n%s", err, tail(c.output.String(), 4000))
	}
	for s := range c.steps {
		c.last = s
	}
	return c.last
}

// stop closes the child's stdin and waits for a clean exit.
func (c *crashChild) stop() {
	c.t.Helper()
	c.stdin.Close()
	select {
	case err := <-c.done:
		if err != nil {
			c.t.Fatalf("child: %v; output:\n%s", err, tail(c.output.String(), 4000))
		}
	case <-time.After(20 * time.Second):
		c.t.Fatalf("child did not stop; output:\n%s", tail(c.output.String(), 4000))
	}
}

// warnings are the child's log lines at WARN or above.
func (c *crashChild) warnings() []string {
	var out []string
	for _, l := range strings.Split(c.output.String(), "\n") {
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
			out = append(out, l)
		}
	}
	return out
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// crashPhase names the phase a kill landed in from the last step the child
// reported before it.
func crashPhase(last string) string {
	switch last {
	case "", "open:start":
		return "open (replay)"
	case "apply:start", "apply:written":
		return "download/apply"
	case "fold:locked", "fold:snapshot", "fold:pages", "fold:synced", "fold:state":
		return "fold"
	case "stage:start":
		return "snapshot download"
	case "stage:done", "install:state", "install:renamed":
		return "install"
	}
	return "poll (between files)" // open:done, apply:done, fold:done, install:done
}

// TestCrash kills a follower process with SIGKILL at random instants, and
// at chosen steps (mid-apply, mid-fold, mid-install of a first and of a
// re-bootstrap snapshot, mid-fold of a staged snapshot), 60 times, while a
// reference SQLite database in rollback-journal mode publishes small
// transactions (VACUUMs that shrink it among them). After every kill the
// replica, reopened, must hold exactly the image of one TXID, no older than
// before the kill, on disk as well as served, pass SQLite's integrity
// check, and keep a change counter that only moves forward. At the end a
// child that is left alone catches up with the producer.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("kills 60 processes")
	}
	w := newWorld(t, 1024, false)
	w.Ref.Exec("CREATE TABLE seq (n INTEGER)")
	w.Ref.Exec("INSERT INTO seq VALUES (0)")
	w.InsertRows(30, 400)
	w.Advance(w.Ref.Image())
	w.Snapshot()

	rng := rand.New(rand.NewPCG(7, 11))
	nextID := 1000
	vacuums := 0
	run := func(tx *sql.Tx, q string, args ...any) {
		if _, err := tx.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// produce commits one small transaction (one TXID).
	produce := func() {
		pages := len(w.Pub.Image) / int(w.Pub.PageSize)
		switch p := rng.IntN(100); {
		case pages > 220 || p < 2: // shrink: delete most rows, VACUUM
			w.Ref.Exec("DELETE FROM t WHERE id % 4 != 0")
			w.Ref.Exec("UPDATE seq SET n = n + 1")
			w.Commit()
			w.Ref.Exec("VACUUM")
			vacuums++
		case p < 60:
			w.Ref.Tx(func(tx *sql.Tx) {
				for range 1 + rng.IntN(4) {
					nextID++
					size := 20 + rng.IntN(600)
					if rng.IntN(8) == 0 {
						size = 1500 + rng.IntN(3000) // overflow pages
					}
					run(tx, "INSERT INTO t (id, k, v) VALUES (?, ?, ?)", nextID, fmt.Sprint("k", nextID), worldtest.Blob(nextID, size))
				}
				run(tx, "UPDATE seq SET n = n + 1")
			})
		case p < 85:
			w.Ref.Tx(func(tx *sql.Tx) {
				run(tx, "UPDATE t SET v = ? WHERE id IN (SELECT id FROM t ORDER BY random() LIMIT 3)", worldtest.Blob(rng.IntN(1e6), rng.IntN(900)))
				run(tx, "UPDATE seq SET n = n + 1")
			})
		default:
			w.Ref.Tx(func(tx *sql.Tx) {
				run(tx, "DELETE FROM t WHERE id IN (SELECT id FROM t ORDER BY random() LIMIT 4)")
				run(tx, "UPDATE seq SET n = n + 1")
			})
		}
		w.Commit()
	}

	// verified is the TXID the replica held at the last check: it never
	// goes back, so older images and L0 files can go.
	var verified ltx.TXID
	var counter uint32
	interrupted := 0 // kills after which other processes saw an interrupted fold
	prune := func() {
		w.Forget(verified)
		entries, _ := os.ReadDir(filepath.Join(w.StoreDir, "ltx", "0"))
		for _, e := range entries {
			fi, ok := parseL0(e.Name())
			if ok && fi.MaxTXID+1 < verified {
				os.Remove(filepath.Join(w.StoreDir, "ltx", "0", e.Name()))
			}
		}
	}
	// check looks at what the dead child left, first as other processes
	// would before anyone takes over, then reopens the replica.
	check := func(run int, phase, last string, aimed bool) {
		t.Helper()
		what := fmt.Sprintf("run %d (killed in %s, after %s)", run, phase, last)
		if checkOthers(t, w, verified != 0, last, aimed, what) {
			interrupted++
		}
		r, err := Open(w.Path, w.Source)
		if err != nil {
			t.Fatalf("%s: reopen: %v", what, err)
		}
		h := r.Head()
		if h == nil {
			// Killed before the first bootstrap was recorded: the next
			// run starts it again.
			r.Close()
			if verified != 0 {
				t.Fatalf("%s: the replica lost its bootstrap (it was at TXID %d)", what, verified)
			}
			return
		}
		if h.TXID < verified {
			t.Fatalf("%s: replica at TXID %d after the restart, it was at %d", what, h.TXID, verified)
		}
		if h.Counter < counter {
			t.Fatalf("%s: change counter went back from %d to %d", what, counter, h.Counter)
		}
		if w.Image(h.TXID) == nil {
			t.Fatalf("%s: replica at TXID %d, which the producer never published", what, h.TXID)
		}
		w.checkHead(r, h.TXID, what)
		w.checkBase(h.TXID, what) // the reopen folded everything
		if n := segments(t, r); n != 0 {
			entries, _ := os.ReadDir(r.logDir)
			t.Fatalf("%s: %d files left in the log after the replay: %v", what, n, entries)
		}
		verified, counter = h.TXID, h.Counter
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		integrityCheck(t, w.Path, what)
	}

	// Steps to kill at on purpose, by the run that aims at them; the other
	// runs are killed 0–150ms after the child starts its open. (Each check
	// reopens the replica, which finishes whatever the kill interrupted, so
	// a step that only a later run would reach cannot be aimed at.)
	const runs = 60
	targets := map[int]string{0: "install:state"} // the first bootstrap, before its rename
	aim := []string{"apply:start", "apply:written", "fold:locked", "fold:pages", "fold:synced", "fold:state"}
	for i, run := 0, 3; run < runs; i, run = i+1, run+3 {
		targets[run] = aim[i%len(aim)]
	}
	// Re-bootstraps: while the child is dead the producer moves on, its L0
	// files are deleted and a new snapshot is published; the next runs aim
	// at staging it, installing it, and folding it into the base file.
	rebootstraps := map[int][]string{
		12: {"stage:start", "install:state"},
		24: {"fold:snapshot"},
		36: {"stage:done", "fold:pages"},
		48: {"fold:synced"},
	}
	for at, steps := range rebootstraps {
		for j, s := range steps {
			targets[at+j] = s
		}
	}

	phases := map[string]int{}
	random := map[string]int{} // phases of the kills at a random instant
	steps := map[string]int{}
	missed := 0
	start := time.Now()
	for run := range runs {
		if _, ok := rebootstraps[run]; ok {
			for range 5 {
				produce()
			}
			if err := os.RemoveAll(filepath.Join(w.StoreDir, "ltx", "0")); err != nil {
				t.Fatal(err)
			}
			w.Snapshot()
			produce()
		}
		target := targets[run]
		c := startCrashChild(t, w, target)
		deadline := time.Now().Add(10 * time.Second)
		for { // wait until the child runs
			if seen, alive := c.poll("open:start"); seen || c.last != "" {
				break
			} else if !alive || time.Now().After(deadline) {
				c.kill()
				t.Fatalf("run %d: the child never started", run)
			}
			time.Sleep(time.Millisecond)
		}
		var killAt time.Time
		if target == "" {
			killAt = time.Now().Add(time.Duration(rng.IntN(150_000)) * time.Microsecond)
		} else {
			killAt = time.Now().Add(3 * time.Second) // unless it reaches the target
		}
		for time.Now().Before(killAt) {
			if target != "" {
				if seen, _ := c.poll(target); seen {
					break
				}
			}
			produce()
			time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
		}
		last := c.kill()
		if target != "" && last != target {
			missed++
			t.Logf("run %d: aimed at %s, killed after %q", run, target, last)
		}
		phase := crashPhase(last)
		phases[phase]++
		if target == "" {
			random[phase]++
		}
		steps[last]++
		for _, l := range c.warnings() {
			if strings.Contains(l, "level=ERROR") || strings.Contains(l, "rejected") {
				t.Errorf("run %d: child logged: %s", run, l)
			}
		}
		check(run, phase, last, target != "" && last == target)
		prune()
	}
	t.Logf("%d kills in %v, %d TXIDs, %d VACUUMs; by phase: %v (at random instants: %v); by last step: %v; %d aimed kills missed their step; %d left a fold that other processes refused to read",
		runs, time.Since(start).Round(time.Millisecond), w.Pub.TXID, vacuums, phases, random, steps, missed, interrupted)
	if phases["fold"] < 10 || phases["install"] < 3 || phases["download/apply"] < 5 {
		t.Errorf("too few kills in the phases that matter: %v", phases)
	}

	// Left alone, a child catches up with the producer, and another process
	// reading the base file passively sees that TXID.
	for range 20 {
		produce()
	}
	last := w.Pub.TXID
	c := startCrashChild(t, w, "")
	testtool.Eventually(t, fmt.Sprintf("the replica at TXID %d", last), 20*time.Second, func() error {
		if st, err := ReadState(w.Path); err != nil || st == nil || st.TXID != last {
			return fmt.Errorf("state %+v, %v; child output:\n%s", st, err, tail(c.output.String(), 4000))
		}
		return nil
	})
	p, err := OpenPassive(w.Path, "")
	if err != nil {
		t.Fatal(err)
	}
	v, err := p.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if v.TXID != last {
		t.Fatalf("passive reader at TXID %d, want %d", v.TXID, last)
	}
	checkVersion(t, v, w.Image(last), "passive reader after convergence")
	p.End()
	p.Close()
	c.stop()
	for _, l := range c.warnings() {
		t.Errorf("converging child logged: %s", l)
	}
	r := w.openReplica()
	w.checkHead(r, last, "after convergence")
	w.checkBase(last, "after convergence")
	r.Close()
	integrityCheck(t, w.Path, "after convergence")
}

// checkOthers checks what a process that does not follow the replica sees
// right after the follower was killed, before any other process takes
// over: walrust's passive reader either reads exactly the image of the
// TXID the state names or, when the kill interrupted a fold, refuses with
// ErrFoldInterrupted; plain SQLite either finds the file intact or, while
// page 1 carries the fold's mark, refuses it as not a database. Never a
// torn file.
//
// last is the last step the child reported; aimed says it paused there, so
// the kill came before the next step (otherwise the child may have gone
// on a little).
func checkOthers(t *testing.T, w *world, bootstrapped bool, last string, aimed bool, what string) (interrupted bool) {
	t.Helper()
	// After the fold's mark and before its state: the base file is not the
	// state's TXID.
	midFold := last == "fold:snapshot" || last == "fold:pages" || last == "fold:synced"
	p, err := OpenPassive(w.Path, "")
	if errors.Is(err, ErrNoReplica) && !bootstrapped {
		return false
	} else if err != nil {
		t.Fatalf("%s: passive open: %v", what, err)
	}
	v, err := p.Begin()
	switch {
	case errors.Is(err, ErrFoldInterrupted):
		interrupted = true
		if !midFold && last != "fold:locked" { // the mark comes after the lock
			t.Fatalf("%s: a passive reader says a fold was interrupted", what)
		}
	case err != nil:
		t.Fatalf("%s: passive begin: %v", what, err)
	default:
		derr := versionDiff(v, w.Image(v.TXID))
		p.End()
		if midFold && aimed {
			t.Fatalf("%s: a passive reader began on the file of an interrupted fold (TXID %d; diff: %v)", what, v.TXID, derr)
		}
		if derr != nil {
			t.Fatalf("%s: passive reader: %v", what, derr)
		}
	}
	p.Close() // before plain SQLite opens and closes the file: POSIX locks
	hdr := make([]byte, 16)
	if f, err := os.Open(w.Path); err != nil {
		t.Fatal(err)
	} else {
		f.ReadAt(hdr, 0)
		f.Close()
	}
	err = integrity(w.Path)
	if string(hdr) == foldingMagic {
		if err == nil || !strings.Contains(err.Error(), "file is not a database") {
			t.Fatalf("%s: plain SQLite on the file of an interrupted fold: %v, want \"file is not a database\"", what, err)
		}
	} else if err != nil {
		t.Fatalf("%s: plain SQLite: %v", what, err)
	}
	return interrupted
}

// integrityCheck runs PRAGMA integrity_check on the base file with plain
// SQLite, read-only.
func integrityCheck(t *testing.T, path, what string) {
	t.Helper()
	if err := integrity(path); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func integrity(path string) error {
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		return err
	}
	defer db.Close()
	var res []string
	rows, err := db.Query("PRAGMA integrity_check")
	if err != nil {
		return fmt.Errorf("integrity_check: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return err
		}
		res = append(res, s)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("integrity_check: %w", err)
	}
	if !slices.Equal(res, []string{"ok"}) {
		return fmt.Errorf("integrity_check: %v", res)
	}
	return nil
}

// parseL0 parses an L0 file name.
func parseL0(name string) (store.FileInfo, bool) {
	var lo, hi uint64
	if _, err := fmt.Sscanf(name, "%016x-%016x.ltx", &lo, &hi); err != nil || !strings.HasSuffix(name, ".ltx") {
		return store.FileInfo{}, false
	}
	return store.FileInfo{Level: 0, MinTXID: ltx.TXID(lo), MaxTXID: ltx.TXID(hi)}, true
}
