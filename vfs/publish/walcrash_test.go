package publish

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walrust/walrust/vfs/follow"
	"github.com/walrust/walrust/vfs/replica"
	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// TestPublishChild is the publisher that TestRandomWorkload runs as a
// child process and kills: it publishes every 5 ms until it is killed.
func TestPublishChild(t *testing.T) {
	db, storeDir, work := os.Getenv("WALRUST_PUBLISH_CHILD_DB"), os.Getenv("WALRUST_PUBLISH_CHILD_STORE"), os.Getenv("WALRUST_PUBLISH_CHILD_WORK")
	if db == "" {
		t.Skip("run by TestRandomWorkload")
	}
	st, err := store.OpenFile(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := New(db, st, Options{WorkDir: work,
		OnPublish: func(r Result) { fmt.Printf("published %d\n", r.TXID) },
		OnError:   func(err error) { fmt.Printf("error %v\n", err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("ready")
	if err := pub.Run(context.Background(), 5*time.Millisecond); err != nil {
		t.Fatal(err)
	}
}

// publishChild is a running TestPublishChild.
type publishChild struct {
	cmd *exec.Cmd
	out *testtool.Buffer
}

func startPublishChild(t *testing.T, p *primary, storeDir, work string) *publishChild {
	t.Helper()
	c := &publishChild{out: &testtool.Buffer{}}
	c.cmd = exec.Command(os.Args[0], "-test.run=^TestPublishChild$", "-test.v")
	c.cmd.Env = append(os.Environ(), "WALRUST_PUBLISH_CHILD_DB="+p.path,
		"WALRUST_PUBLISH_CHILD_STORE="+storeDir, "WALRUST_PUBLISH_CHILD_WORK="+work)
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.cmd.Process.Kill(); c.cmd.Wait() })
	testtool.Eventually(t, "the publisher child to start", 20*time.Second, func() error {
		if !strings.Contains(c.out.String(), "ready") {
			return fmt.Errorf("output so far: %s", c.out.String())
		}
		return nil
	})
	return c
}

func (c *publishChild) kill(t *testing.T) {
	t.Helper()
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.cmd.Wait()
	sc := bufio.NewScanner(strings.NewReader(c.out.String()))
	for sc.Scan() {
		// A publish that lost a race with a restart of the log reports
		// it and tries again; nothing else may fail.
		if l := sc.Text(); strings.HasPrefix(l, "error ") && !strings.Contains(l, "restarted while it was read") {
			t.Fatalf("the publisher failed: %s", l)
		}
	}
}

// workload makes random changes to a primary: inserts, updates and
// deletes of rows of random sizes (some overflowing), schema changes,
// VACUUM, transactions larger than the publisher's checkpoint bound, and
// TRUNCATE checkpoints of the application's own (which give up after a
// short wait while a publisher holds its read transaction).
type workload struct {
	t    *testing.T
	p    *primary
	rng  *rand.Rand
	next int // next row id
	idx  int // indexes made
}

func (w *workload) step() string {
	p, rng := w.p, w.rng
	switch n := rng.IntN(100); {
	case n < 35:
		k := 1 + rng.IntN(40)
		insertRows(w.t, p, w.next, k, rng.IntN(3*4096))
		w.next += k
		return "insert"
	case n < 55:
		p.exec("UPDATE t SET body = ? WHERE id % ? = ?", body(rng.IntN(1000), rng.IntN(2000)), 2+rng.IntN(20), rng.IntN(2))
		return "update"
	case n < 70:
		p.exec("DELETE FROM t WHERE id % ? = 0", 3+rng.IntN(30))
		return "delete"
	case n < 75:
		p.exec("VACUUM")
		return "vacuum"
	case n < 80:
		w.idx++
		p.exec(fmt.Sprintf("CREATE INDEX t_%d ON t (name, id %% %d)", w.idx, w.idx+1))
		p.exec(fmt.Sprintf("CREATE TABLE IF NOT EXISTS side_%d (x)", w.idx%3))
		p.exec(fmt.Sprintf("INSERT INTO side_%d VALUES (?)", w.idx%3), rng.Int64())
		return "schema"
	case n < 83:
		p.exec(fmt.Sprintf("DROP INDEX IF EXISTS t_%d", 1+rng.IntN(max(w.idx, 1))))
		return "drop index"
	case n < 87:
		// About 1200 pages in one transaction: past the publisher's
		// checkpoint bound, and past the application's autocheckpoint.
		insertRows(w.t, p, w.next, 1200, 4000)
		w.next += 1200
		return "large transaction"
	case n < 93:
		var busy, log, done int
		p.exec("PRAGMA busy_timeout = 20")
		if err := p.db.QueryRow("PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &log, &done); err != nil {
			w.t.Fatal(err)
		}
		p.exec("PRAGMA busy_timeout = 5000")
		return fmt.Sprintf("truncate checkpoint (busy=%d)", busy)
	default:
		time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
		return "pause"
	}
}

// TestRandomWorkload runs random workloads on a WAL-mode primary while a
// publisher, in a child process, follows its log (and on a rollback-mode
// one, which it compares in full), and kills the publisher
// with SIGKILL at random instants; between runs, with the publisher down,
// the application writes and checkpoints with TRUNCATE. After each round
// a publisher catches up, and the store, rebuilt file by file, restored
// by litestream restore and followed by a walrust replica, equals the
// primary.
func TestRandomWorkload(t *testing.T) {
	litestream := testtool.Built(t, "litestream")
	for _, mode := range []string{"wal", "delete"} {
		t.Run(mode, func(t *testing.T) { randomWorkload(t, litestream, mode) })
	}
}

// randomWorkload is TestRandomWorkload in one journal mode (in rollback
// mode the checkpoints do nothing, and every publish compares in full).
func randomWorkload(t *testing.T, litestream, mode string) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	p := newPrimary(t, mode, 4096)
	p.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, body TEXT)")
	w := &workload{t: t, p: p, rng: rng}
	storeDir, work := t.TempDir(), t.TempDir()
	st, err := store.OpenFile(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	rounds := 5
	if mode != "wal" {
		rounds = 3
	}
	if testing.Short() {
		rounds = 2
	}
	var r *replica.Replica
	for round := range rounds {
		child := startPublishChild(t, p, storeDir, work)
		var did []string
		for range 5 + rng.IntN(25) {
			did = append(did, w.step())
		}
		time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond)
		child.kill(t)
		// The publisher is down: the application goes on, and may
		// checkpoint the log away.
		for range rng.IntN(4) {
			did = append(did, w.step())
		}
		if rng.IntN(2) == 0 {
			p.checkpoint()
			p.exec("PRAGMA wal_checkpoint(TRUNCATE)")
			did = append(did, "truncate checkpoint while down")
		}
		t.Logf("round %d: %s", round, strings.Join(did, ", "))

		// A publisher catches up, then stops so that the checks can
		// checkpoint the primary.
		pub, err := New(p.path, st, Options{WorkDir: work})
		if err != nil {
			t.Fatal(err)
		}
		res := publishOnce(t, pub)
		if again := publishOnce(t, pub); again.Changed {
			t.Fatalf("a second publish found more: %+v", again)
		}
		pub.Close()
		verifyStore(t, p, st, res)
		restoreEquals(t, litestream, p, storeDir, filepath.Join(t.TempDir(), "restored.db"))
		if r == nil {
			r = startReplica(t, st)
		}
		testtool.Eventually(t, fmt.Sprintf("the replica to reach TXID %d", res.TXID), 15*time.Second, func() error {
			if h := r.Head(); h == nil || h.TXID != res.TXID {
				return fmt.Errorf("replica at %+v", h)
			}
			return nil
		})
		checkReplica(t, p, r)
	}
}

// startReplica starts a walrust replica following st, closed at cleanup.
func startReplica(t *testing.T, st store.Store) *replica.Replica {
	t.Helper()
	r, err := replica.Open(filepath.Join(t.TempDir(), "replica.db"), st.String())
	if err != nil {
		t.Fatal(err)
	}
	f := follow.Follow(r, st, follow.Options{Interval: 5 * time.Millisecond})
	t.Cleanup(func() { f.Close(); r.Close() })
	if err := f.WaitReady(15 * time.Second); err != nil {
		t.Fatal(err)
	}
	return r
}

// restoreEquals restores the store with litestream restore and compares
// the result with the primary.
func restoreEquals(t *testing.T, litestream string, p *primary, storeDir, out string) {
	t.Helper()
	cmd := exec.Command(litestream, "restore", "-o", out, "file://"+storeDir)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("litestream restore: %v\n%s", err, b)
	}
	db, err := sql.Open("sqlite3", "file:"+out+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ok string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("restored database: integrity_check %q %v", ok, err)
	}
	if want, got := testtool.ContentHash(t, p.db), testtool.ContentHash(t, db); want != got {
		t.Fatalf("litestream restore differs from the primary:\nprimary:  %s\nrestored: %s", want, got)
	}
}
