package bench

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/ltxtest"
)

// fleet measures what each idle replica costs a process that follows many:
// heap and goroutines per replica, and store requests per idle poll, at
// each fleet size; the smallest fleet's cost per replica is the baseline
// (flat is the target: nothing grows faster than the count).
func (b *bench) fleet() {
	t := b.t
	type cost struct{ heap, goroutines float64 }
	var base cost
	for i, n := range b.cfg.fleetSizes {
		dir := filepath.Join(b.dir, fmt.Sprintf("fleet-%d", n))
		// The stores first, outside the measurement.
		img := fleetImage(t, dir)
		for k := range n {
			sdir := filepath.Join(dir, fmt.Sprintf("store-%d", k))
			if err := os.MkdirAll(sdir, 0o755); err != nil {
				t.Fatal(err)
			}
			st, err := store.OpenFile(sdir)
			if err != nil {
				t.Fatal(err)
			}
			pub := &ltxtest.Primary{Store: st, PageSize: 4096, NoChecksum: true}
			pub.Advance(img, 1)
			pub.Snapshot(t)
		}
		heap0, g0 := heapLive(), runtime.NumGoroutine()
		dbs := make([]*sql.DB, n)
		for k := range n {
			dbs[k] = openDB(t, fmt.Sprintf("file:%s?vfs=walrust&source=file://%s&interval=%s",
				filepath.Join(dir, fmt.Sprintf("replica-%d.db", k)), filepath.Join(dir, fmt.Sprintf("store-%d", k)), b.cfg.fleetInterval))
			dbs[k].SetMaxOpenConns(1)
			var x int
			if err := dbs[k].QueryRow("SELECT count(*) FROM t").Scan(&x); err != nil {
				t.Fatalf("fleet of %d: replica %d: %v", n, k, err)
			}
		}
		c := cost{
			heap: float64(max(heapLive()-heap0, 1)) / float64(n),
			// database/sql runs one goroutine per *sql.DB (its connection
			// opener): not walrust's.
			goroutines: float64(runtime.NumGoroutine()-g0-n) / float64(n),
		}
		perPoll := fleetRequestsPerPoll(t, dbs, b.cfg.fleetInterval)
		for _, db := range dbs {
			db.Close()
		}
		if i == 0 {
			base = c
		}
		b.add(row{
			group:    "fleet",
			what:     fmt.Sprintf("heap per idle replica, %d replicas in one process", n),
			walrust:  fmt.Sprintf("%.0f KiB (%.1f MiB in all)", c.heap/1024, c.heap*float64(n)/(1<<20)),
			baseline: fmt.Sprintf("%.0f KiB per replica with %d", base.heap/1024, b.cfg.fleetSizes[0]),
			a:        max(c.heap, 1), b: max(base.heap, 1),
			target: "flat (≤ 1.1)", meets: meets(c.heap <= 1.1*base.heap),
		})
		b.add(row{
			group:    "fleet",
			what:     fmt.Sprintf("goroutines per idle replica, %d replicas; store requests per idle poll", n),
			walrust:  fmt.Sprintf("%.2f goroutines; %.2f requests per poll", c.goroutines, perPoll),
			baseline: fmt.Sprintf("%.2f per replica with %d; 1 LIST per poll", base.goroutines, b.cfg.fleetSizes[0]),
			a:        max(c.goroutines, 0.01), b: max(base.goroutines, 0.01),
			target: "flat (≤ 1.1)", meets: meets(c.goroutines <= 1.1*base.goroutines && perPoll <= 1.0001),
		})
	}
}

// fleetImage is a 2-page database image.
func fleetImage(t interface {
	Helper()
	Fatal(...any)
}, dir string) []byte {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "primary.db")
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=DELETE")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{"PRAGMA page_size=4096", "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", "INSERT INTO t (v) VALUES ('a')"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	img, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// heapLive is the bytes of live objects after a collection (HeapAlloc
// right after a GC): what the process holds, not what its spans cover.
func heapLive() int64 {
	// Two collections: the first moves sync.Pool contents (json's, bufio's,
	// left by the scenarios before) to the pools' victim caches, the second
	// frees them. With one, what the pools held before the fleet opened
	// could be freed during it and make the fleet's heap look negative.
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// fleetRequestsPerPoll is the store requests each replica made per poll
// over two intervals, summed over the fleet, from each one's own status.
func fleetRequestsPerPoll(t interface{ Fatal(...any) }, dbs []*sql.DB, interval time.Duration) float64 {
	type counts struct {
		Polls int64 `json:"polls"`
		Store struct {
			Lists int64 `json:"list_requests"`
			Gets  int64 `json:"get_requests"`
		} `json:"store"`
	}
	read := func() []counts {
		out := make([]counts, len(dbs))
		for i, db := range dbs {
			var s string
			if err := db.QueryRow("PRAGMA walrust_status").Scan(&s); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(s), &out[i]); err != nil {
				t.Fatal(err)
			}
		}
		return out
	}
	before := read()
	time.Sleep(2 * interval) // the measuring window, not an assertion
	after := read()
	var polls, reqs int64
	for i := range dbs {
		polls += after[i].Polls - before[i].Polls
		reqs += (after[i].Store.Lists - before[i].Store.Lists) + (after[i].Store.Gets - before[i].Store.Gets)
	}
	if polls == 0 {
		return 0
	}
	return float64(reqs) / float64(polls)
}
