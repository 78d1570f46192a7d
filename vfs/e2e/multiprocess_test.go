package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// mpReader is one reader process of TestMultiProcess and what its loop has
// seen so far. The loop goroutine owns the process; the test reads the
// atomics.
type mpReader struct {
	name   string
	c      *procClient
	reads  atomic.Int64 // read transactions that saw the invariant total
	txid   atomic.Int64 // the last TXID it read at (walrust readers)
	role   atomic.Value // the last role walrust_status reported (string)
	killed atomic.Bool  // the test killed it: its loop's errors are expected
	window atomic.Bool  // the follower was killed: a fold may have been interrupted
	errors atomic.Int64 // reads that failed in the window after the kill (plain reader)
	err    chan error   // the first unexpected failure
	stderr atomic.Int64 // how much of its stderr has been looked at
	last   atomic.Value // the last content it read (plain reader; string)
	lastAt atomic.Pointer[time.Time]
}

const mpInterval = 50 * time.Millisecond

// TestMultiProcess: while a producer publishes transfers between accounts
// (the total never changes), three processes read one local replica at
// once: two sqlite3 shells with walrust loaded, and a plain sqlite3 shell
// (no extension) reading the file read-only. Every read transaction of
// every process sees the invariant total twice, and walrust's TXIDs never
// go back. Exactly one walrust process follows the store; when it is
// killed with SIGKILL, the other takes over within a few poll intervals and
// converges to the producer's newest TXID, and the plain reader sees it
// too.
func TestMultiProcess(t *testing.T) {
	ext := testtool.Extension(t)
	sqlite3 := testtool.Program(t, "sqlite3")
	stdbuf := testtool.Program(t, "stdbuf")
	e := newBank(t)
	uri := fmt.Sprintf("file:%s?vfs=walrust&source=file://%s&interval=%s", e.Path, e.StoreDir, mpInterval)
	shell := func(name, preamble string) *mpReader {
		cmd := exec.Command(stdbuf, "-oL", sqlite3, "-batch", "-noheader")
		wrap := func(q string) string { return q + ";\nSELECT '" + endMark + "';\n" }
		r := &mpReader{name: name, c: startProc(t, name, cmd, wrap, preamble), err: make(chan error, 1)}
		r.role.Store("")
		r.last.Store("")
		return r
	}
	walrust := func(name string) *mpReader {
		r := shell(name, fmt.Sprintf(".load %s\n.open '%s'\n.timeout 5000\n", ext, uri))
		// The open bootstraps, or waits for the follower's bootstrap; a
		// reader sees the accounts once the follower has folded them.
		eventually(t, name+" to read the accounts", func() error {
			_, err := r.c.query("SELECT count(*) FROM acct")
			return err
		})
		return r
	}
	a := walrust("walrust A")
	b := walrust("walrust B")
	plain := shell("plain sqlite3", fmt.Sprintf(".open --readonly '%s'\n.timeout 5000\n", e.Path))

	var stop atomic.Bool
	var wg sync.WaitGroup
	for _, r := range []*mpReader{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.walrustLoop(&stop)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		plain.plainLoop(&stop)
	}()
	failed := func() {
		t.Helper()
		for _, r := range []*mpReader{a, b, plain} {
			select {
			case err := <-r.err:
				stop.Store(true)
				t.Fatalf("%s: %v", r.name, err)
			default:
			}
		}
	}
	rng := rand.New(rand.NewSource(3))
	produce := func(d time.Duration) {
		t.Helper()
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			e.transfer(rng)
			failed()
			time.Sleep(5 * time.Millisecond)
		}
	}
	// waitUntil polls cond while the producer keeps publishing.
	waitUntil := func(what string, timeout time.Duration, cond func() bool) time.Duration {
		t.Helper()
		start := time.Now()
		for !cond() {
			if time.Since(start) > timeout {
				t.Fatalf("timed out after %v waiting for %s; roles: A %q, B %q", timeout, what, a.role.Load(), b.role.Load())
			}
			failed()
			time.Sleep(time.Millisecond)
		}
		return time.Since(start)
	}

	produce(time.Second)
	waitUntil("every process to read", 10*time.Second, func() bool {
		return a.reads.Load() > 5 && b.reads.Load() > 5 && plain.reads.Load() > 5 && a.role.Load() != "" && b.role.Load() != ""
	})
	follower, other := a, b
	if b.role.Load() == "follower" {
		follower, other = b, a
	}
	if follower.role.Load() != "follower" || other.role.Load() != "reader" {
		t.Fatalf("roles: %s %q, %s %q; want one follower and one reader", a.name, a.role.Load(), b.name, b.role.Load())
	}
	produce(time.Second)

	// Kill the follower in the middle of the stream.
	follower.killed.Store(true)
	plain.window.Store(true)
	if err := follower.c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	took := waitUntil("the other process to take over", 10*time.Second, func() bool {
		e.transfer(rng)
		return other.role.Load() == "follower"
	})
	t.Logf("%s took over %v after the kill (interval %v)", other.name, took.Round(time.Millisecond), mpInterval)
	// A takeover retries every poll interval; on a loaded machine (CI
	// beside other builds) the kill, the retry and the child's report of
	// its new role take a few more. A takeover that waited for anything
	// else (a lock timeout, a backoff) would take seconds.
	if took > 20*mpInterval {
		t.Errorf("takeover took %v, more than 20 poll intervals (%v)", took, 20*mpInterval)
	}
	produce(time.Second)

	// It converges to the producer's newest TXID, and so does the file the
	// plain reader reads.
	want := int64(e.Pub.TXID)
	wantContent := bankContent(t, e)
	waitUntil("the new follower to reach the newest TXID", 10*time.Second, func() bool { return other.txid.Load() == want })
	waitUntil("the plain reader to see the newest content", 10*time.Second, func() bool {
		at := plain.lastAt.Load()
		return plain.last.Load() == wantContent && at != nil && at.After(killedAt)
	})
	stop.Store(true)
	wg.Wait()
	failed()
	t.Logf("%d TXIDs; read transactions: %s %d, %s %d (killed), plain sqlite3 %d (%d refused in the takeover window)",
		want, other.name, other.reads.Load(), follower.name, follower.reads.Load(), plain.reads.Load(), plain.errors.Load())
	if plain.errors.Load() > 0 {
		t.Logf("the kill interrupted a fold: the plain reader was told %q until the takeover", "file is not a database")
	}
}

// bankContent is every account's balance, as the plain reader reads it.
func bankContent(t *testing.T, e *world) string {
	t.Helper()
	var s string
	if err := e.Ref.DB.QueryRow("SELECT group_concat(id || ':' || balance, ',') FROM (SELECT * FROM acct ORDER BY id)").Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// readTx is one read transaction: the total, the TXID (walrust readers), a
// scan of every note so most pages are read, and the total again.
const readTx = "BEGIN; SELECT sum(balance) FROM acct; %s SELECT count(*) FROM acct WHERE note LIKE '%%zz%%'; SELECT sum(balance) FROM acct; %s COMMIT"

func (r *mpReader) fail(err error) {
	select {
	case r.err <- err:
	default:
	}
}

// walrustLoop reads in a loop: a read transaction, then walrust_status.
func (r *mpReader) walrustLoop(stop *atomic.Bool) {
	q := fmt.Sprintf(readTx, "PRAGMA walrust_txid;", "")
	want := strconv.Itoa(accounts * startBalance)
	for !stop.Load() {
		out, err := r.c.query(q)
		if r.killed.Load() {
			return
		}
		if err != nil {
			r.fail(err)
			return
		}
		if len(out) != 4 || out[0] != want || out[3] != want {
			r.fail(fmt.Errorf("read transaction returned %q, want totals %s; stderr: %s", out, want, tail(r.c.stderr.String(), 500)))
			return
		}
		txid, err := strconv.ParseInt(out[1], 10, 64)
		if err != nil || txid < r.txid.Load() {
			r.fail(fmt.Errorf("walrust_txid %q after %d", out[1], r.txid.Load()))
			return
		}
		r.reads.Add(1)
		out, err = r.c.query("PRAGMA walrust_status")
		if r.killed.Load() {
			return
		}
		var st struct {
			Role string `json:"role"`
			TXID int64  `json:"txid"`
		}
		if err == nil && len(out) == 1 {
			err = json.Unmarshal([]byte(out[0]), &st)
		} else if err == nil {
			err = fmt.Errorf("walrust_status returned %q", out)
		}
		if err != nil {
			r.fail(err)
			return
		}
		r.role.Store(st.Role)
		r.txid.Store(txid)
	}
}

// plainLoop reads in a loop with plain SQLite: a read transaction that
// also reads every balance.
func (r *mpReader) plainLoop(stop *atomic.Bool) {
	q := fmt.Sprintf(readTx, "", "SELECT group_concat(id || ':' || balance, ',') FROM (SELECT * FROM acct ORDER BY id);")
	want := strconv.Itoa(accounts * startBalance)
	for !stop.Load() {
		before := len(r.c.stderr.String())
		out, err := r.c.query(q)
		if err != nil || len(out) != 4 || out[0] != want || out[2] != want {
			// A follower killed mid-fold leaves page 1 marked until the
			// other process takes over: plain SQLite refuses the file
			// rather than read it torn. Anything else is a failure.
			if news := r.c.stderr.String()[before:]; r.window.Load() && strings.Contains(news, "file is not a database") && len(out) == 0 {
				r.errors.Add(1)
				continue
			}
			r.fail(fmt.Errorf("read transaction returned %q (%v), want totals %s; stderr: %s", out, err, want, tail(r.c.stderr.String(), 500)))
			return
		}
		r.reads.Add(1)
		r.last.Store(out[3])
		now := time.Now()
		r.lastAt.Store(&now)
	}
}
