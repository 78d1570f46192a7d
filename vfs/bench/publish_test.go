package bench

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// pubPhase is what one publisher used during one phase of writes.
type pubPhase struct {
	used    procSample
	lat     []time.Duration // commit → a file holding it in the store
	missing int             // commits never seen in the store
}

// publish compares walrust publish with litestream replicate, each in its
// own process and on its own copy of the same WAL-mode database, at the
// same interval: first 10 single-row updates a second, then (at one size)
// a burst of 1,000 single-row inserts a second. For each phase: the
// process's CPU time (every thread's schedstat), bytes written to disk
// (/proc/<pid>/io write_bytes), bytes read (rchar), and the latency from
// each commit to a level-0 file that holds it appearing in the store
// (a marker in the written row; the store polled every 5 ms). Startup (the
// first snapshot) is left out: the phases begin once both have published
// it.
func (b *bench) publish() {
	t := b.t
	walrust := testtool.Built(t, "walrust")
	litestream := testtool.Built(t, "litestream")
	cfg := b.cfg
	for _, mb := range cfg.pubMB {
		src := b.pubDatabase(mb)
		burst := mb == cfg.pubBurstMB
		res := map[string][]pubPhase{}
		for _, who := range []string{"walrust", "litestream"} {
			res[who] = b.runPublisher(who, walrust, litestream, src, burst)
		}
		w, l := res["walrust"], res["litestream"]
		phases := []string{fmt.Sprintf("%d MB, 10 updates/s for %s", mb, cfg.pubUpdateFor)}
		if burst {
			phases = append(phases, fmt.Sprintf("%d MB, 1,000 inserts/s for %s", mb, cfg.pubBurstFor))
		}
		for i, what := range phases {
			b.pubRows(what, w[i], l[i])
		}
	}
}

// pubRows adds the rows of one phase.
func (b *bench) pubRows(what string, w, l pubPhase) {
	ratioRow := func(metric string, a, bb float64, fa, fb string) {
		r := row{group: "publish", what: what + ": " + metric, walrust: fa, baseline: fb + " (litestream replicate)",
			a: a, b: bb, target: "≤ 2×"}
		if bb > 0 {
			r.meets = meets(a/bb <= 2)
		}
		b.add(r)
	}
	ratioRow("CPU", w.used.cpu.Seconds(), l.used.cpu.Seconds(), fmtDur(w.used.cpu), fmtDur(l.used.cpu))
	ratioRow("bytes written", float64(w.used.wrote), float64(l.used.wrote), fmtBytes(w.used.wrote), fmtBytes(l.used.wrote))
	ratioRow("bytes read", float64(w.used.read), float64(l.used.read), fmtBytes(w.used.read), fmtBytes(l.used.read))
	limit := b.cfg.pubInterval + 500*time.Millisecond
	p := func(x pubPhase) (time.Duration, string) {
		p99 := time.Duration(quantile(durs(x.lat), 0.99) * float64(time.Second))
		s := fmt.Sprintf("p50 %s, p99 %s", fmtSec(median(durs(x.lat))), fmtDur(p99))
		if x.missing > 0 {
			s += fmt.Sprintf(", %d never seen", x.missing)
		}
		return p99, s
	}
	wp, ws := p(w)
	lp, ls := p(l)
	b.add(row{group: "publish", what: what + ": commit → store", walrust: ws, baseline: ls + " (litestream replicate)",
		a: wp.Seconds(), b: lp.Seconds(), target: "p99 ≤ interval + 0.5 s",
		meets: meets(wp <= limit && w.missing == 0)})
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// pubDatabase makes a WAL-mode database of about mb MB: one table of
// 1,000-byte rows, checkpointed.
func (b *bench) pubDatabase(mb int) string {
	t := b.t
	path := filepath.Join(b.dir, fmt.Sprintf("pub-%d.db", mb))
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL&_synchronous=OFF")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)"); err != nil {
		t.Fatal(err)
	}
	rows := mb * 1000
	pad := strings.Repeat("x", 1000)
	for done := 0; done < rows; {
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 20000 && done < rows; i++ {
			if _, err := tx.Exec("INSERT INTO t (id, body) VALUES (?, ?)", done, pad); err != nil {
				t.Fatal(err)
			}
			done++
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		t.Fatal(err)
	}
	b.logf("publish: prepared a %d MB database", mb)
	return path
}

// runPublisher runs one publisher on a copy of src through the phases.
func (b *bench) runPublisher(who, walrust, litestream, src string, burst bool) []pubPhase {
	t := b.t
	cfg := b.cfg
	dir, err := os.MkdirTemp(b.dir, "pub-"+who+"-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	dbPath, storeDir := filepath.Join(dir, "app.db"), filepath.Join(dir, "store")
	if err := copyFile(src, dbPath); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite3", "file:"+dbPath+"?_journal_mode=WAL&_synchronous=NORMAL&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var n int
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}

	var proc *publisherProc
	if who == "walrust" {
		proc, err = startPublisher(walrust, "publish", dbPath, "file://"+storeDir, "--interval", cfg.pubInterval.String())
	} else {
		conf := filepath.Join(dir, "litestream.yml")
		yml := fmt.Sprintf("dbs:\n  - path: %s\n    replica:\n      type: file\n      path: %s\n      sync-interval: %s\n", dbPath, storeDir, cfg.pubInterval)
		if err := os.WriteFile(conf, []byte(yml), 0o644); err != nil {
			t.Fatal(err)
		}
		proc, err = startPublisher(litestream, "replicate", "-config", conf)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer proc.stop()
	// Startup: the first snapshot, then until the process is quiet (its
	// snapshot and whatever follows it done), so that the phases measure
	// the steady state.
	testtool.Eventually(t, who+"'s first snapshot", 5*time.Minute, func() error {
		entries, _ := os.ReadDir(filepath.Join(storeDir, "ltx", "9"))
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".ltx") {
				return nil
			}
		}
		return fmt.Errorf("no snapshot yet; stderr: %s", proc.stderr.String())
	})
	quiet := 0
	prev, _ := sampleProc(proc.cmd.Process.Pid)
	for deadline := time.Now().Add(5 * time.Minute); quiet < 2 && time.Now().Before(deadline); {
		time.Sleep(cfg.pubInterval + 200*time.Millisecond)
		cur, err := sampleProc(proc.cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if d := cur.sub(prev); d.cpu < 50*time.Millisecond && d.wrote < 1<<20 {
			quiet++
		} else {
			quiet = 0
		}
		prev = cur
	}
	w := watchStore(storeDir)
	defer w.close()

	rng := rand.New(rand.NewPCG(1, 2))
	seq := 0
	pad := strings.Repeat("y", 950)
	phase := func(rate int, d time.Duration, write func(seq int) error) pubPhase {
		before, err := sampleProc(proc.cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		commits := map[int]time.Time{}
		start := time.Now()
		for i := 0; ; i++ {
			due := start.Add(time.Duration(i) * time.Second / time.Duration(rate))
			if due.Sub(start) >= d {
				break
			}
			time.Sleep(time.Until(due))
			if err := write(seq); err != nil {
				t.Fatalf("%s: write: %v", who, err)
			}
			commits[seq] = time.Now()
			seq++
		}
		// Give the publisher two intervals to publish the tail.
		last := seq - 1
		deadline := time.Now().Add(2*cfg.pubInterval + 2*time.Second)
		for time.Now().Before(deadline) {
			if _, ok := w.visibleAt(last); ok {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		after, err := sampleProc(proc.cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		ph := pubPhase{used: after.sub(before)}
		for s, at := range commits {
			if v, ok := w.visibleAt(s); ok {
				ph.lat = append(ph.lat, v.Sub(at))
			} else {
				ph.missing++
			}
		}
		return ph
	}
	phases := []pubPhase{phase(10, cfg.pubUpdateFor, func(seq int) error {
		_, err := db.Exec("UPDATE t SET body = ? WHERE id = ?", markerOf(seq)+pad, rng.IntN(n))
		return err
	})}
	if burst {
		phases = append(phases, phase(1000, cfg.pubBurstFor, func(seq int) error {
			_, err := db.Exec("INSERT INTO t (body) VALUES (?)", markerOf(seq)+pad)
			return err
		}))
	}
	b.logf("publish: %s done (%s)", who, strings.TrimSpace(lastLine(proc.stderr.String())))
	return phases
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
