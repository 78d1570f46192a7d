package bench

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/ltxtest"
	"github.com/walrust/walrust/vfs/testkit/s3test"
)

// lagReplica is one replica followed for the lag measurement, with a reader
// that polls it for the newest row.
type lagReplica struct {
	interval time.Duration
	long     bool // a read transaction stays open on another connection throughout
	db       *sql.DB
	longTx   *sql.Tx
	longN    int64 // rows the long transaction saw

	mu   sync.Mutex
	seen map[int64]time.Time // row id → when the polling reader first saw it
	last int64
	err  error
}

// poll runs SELECT max(id) every millisecond until stop closes, recording
// when each row id first became visible.
func (r *lagReplica) poll(stop <-chan struct{}, done *sync.WaitGroup) {
	defer done.Done()
	for {
		select {
		case <-stop:
			return
		default:
		}
		var id int64
		err := r.db.QueryRow("SELECT coalesce(max(id), 0) FROM t").Scan(&id)
		now := time.Now()
		r.mu.Lock()
		if err != nil && r.err == nil {
			r.err = err
		}
		for x := r.last + 1; x <= id; x++ {
			r.seen[x] = now
		}
		r.last = max(r.last, id)
		r.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
}

func (r *lagReplica) sawAt(id int64) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.seen[id]
	return at, ok
}

// lag measures, on versitygw, the time from an LTX file's PUT completing to
// its row being visible to a reader that polls the replica every
// millisecond: at each interval, with and without a long read transaction
// open on another connection of the same replica. All replicas follow the
// same store at once, so every upload is one sample for each of them. Each
// upload waits a random time first, so that it lands at a random phase of
// every follower's poll timer.
//
// The baseline is an ideal poller: one that notices a file at its next poll
// (a uniform wait over the interval) and needs only one LIST and one GET,
// timed against the same server in the same run: p99 = 0.99 × interval +
// the median LIST+GET time.
func (b *bench) lag() {
	t := b.t
	ctx := context.Background()
	srv := s3test.Start(t, "bkt")
	srv.Env(t)
	openStore := func() store.Store {
		st, err := store.Open(ctx, srv.URL("bkt", "lag"), srv.Options())
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := openStore()
	probe := openStore() // the ideal poller's client

	dir := filepath.Join(b.dir, "lag")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	primPath := filepath.Join(dir, "primary.db")
	prim := openDB(t, "file:"+primPath+"?_journal_mode=DELETE&_synchronous=OFF")
	prim.SetMaxOpenConns(1)
	for _, q := range []string{"PRAGMA page_size=4096", "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"} {
		if _, err := prim.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	pub := &ltxtest.Primary{Store: st, PageSize: 4096, NoChecksum: true}
	pub.Advance(ltxtest.ReadImage(t, primPath), 1)
	pub.Snapshot(t)

	var reps []*lagReplica
	maxInterval := time.Duration(0)
	for _, iv := range b.cfg.lagIntervals {
		maxInterval = max(maxInterval, iv)
		for _, long := range []bool{false, true} {
			r := &lagReplica{interval: iv, long: long, seen: map[int64]time.Time{}}
			path := filepath.Join(dir, fmt.Sprintf("replica-%s-%v.db", iv, long))
			r.db = openDB(t, fmt.Sprintf("file:%s?vfs=walrust&source=%s&endpoint=%s&interval=%s",
				path, srv.URL("bkt", "lag"), srv.Endpoint, iv))
			r.db.SetMaxOpenConns(2)
			if err := r.db.Ping(); err != nil {
				t.Fatal(err)
			}
			if long {
				tx, err := r.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
				if err != nil {
					t.Fatal(err)
				}
				if err := tx.QueryRow("SELECT count(*) FROM t").Scan(&r.longN); err != nil {
					t.Fatal(err)
				}
				r.longTx = tx
			}
			reps = append(reps, r)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, r := range reps {
		wg.Add(1)
		go r.poll(stop, &wg)
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()

	n := b.cfg.scaled(b.cfg.lagSamples)
	lags := make([][]time.Duration, len(reps))
	var rtts []time.Duration
	rng := rand.New(rand.NewPCG(3, 3))
	start := time.Now()
	for i := range n {
		time.Sleep(time.Duration(rng.Int64N(int64(maxInterval))))
		id := int64(i + 1)
		if _, err := prim.Exec("INSERT INTO t (id, v) VALUES (?, ?)", id, fmt.Sprintf("row %d", id)); err != nil {
			t.Fatal(err)
		}
		img := ltxtest.ReadImage(t, primPath)
		file := ltxtest.Encode(t, pub.Image, img, pub.PageSize, pub.TXID+1, pub.TXID+1, pub.Checksum, true, time.Now())
		fi := ltxtest.Put(t, st, 0, file) // returns once the PUT has completed
		put := time.Now()
		pub.Advance(img, pub.TXID+1)

		deadline := put.Add(maxInterval + 30*time.Second)
		for k, r := range reps {
			for {
				if at, ok := r.sawAt(id); ok {
					lags[k] = append(lags[k], max(0, at.Sub(put)))
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("lag: replica at %s (long reader %v) did not see row %d within %s", r.interval, r.long, id, deadline.Sub(put))
				}
				time.Sleep(200 * time.Microsecond)
			}
		}
		// The ideal poller's part: one LIST that finds the file, one GET.
		t0 := time.Now()
		listed, err := probe.ListAfter(ctx, 0, fi.MinTXID-1)
		if err != nil || len(listed) == 0 {
			t.Fatalf("probe list: %v, %v", listed, err)
		}
		rc, err := probe.Open(ctx, listed[len(listed)-1])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatal(err)
		}
		rc.Close()
		rtts = append(rtts, time.Since(t0))
	}
	b.logf("lag: %d samples in %s", n, time.Since(start).Round(time.Second))

	rtt := time.Duration(median(durs(rtts)) * float64(time.Second))
	for k, r := range reps {
		r.mu.Lock()
		err := r.err
		r.mu.Unlock()
		if err != nil {
			t.Fatalf("lag: polling reader: %v", err)
		}
		reader := "no other transaction"
		if r.long {
			reader = "a read transaction open throughout"
			var n int64
			if err := r.longTx.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != r.longN {
				t.Fatalf("lag: the long transaction now sees %d rows, %v; it saw %d", n, err, r.longN)
			}
			r.longTx.Rollback()
		}
		ls := durs(lags[k])
		p50, p99, mx := quantile(ls, 0.5), quantile(ls, 0.99), quantile(ls, 1)
		ideal := 0.99*r.interval.Seconds() + rtt.Seconds()
		limit := r.interval + 100*time.Millisecond
		b.add(row{
			group:    "lag",
			what:     fmt.Sprintf("PUT done → row visible, interval %s, %s (n=%d)", r.interval, reader, len(ls)),
			walrust:  fmt.Sprintf("p50 %s, p99 %s, max %s", fmtSec(p50), fmtSec(p99), fmtSec(mx)),
			baseline: fmt.Sprintf("ideal poller p99 %s (0.99 × interval + LIST+GET %s)", fmtSec(ideal), fmtDur(rtt)),
			a:        p99, b: ideal,
			target: fmt.Sprintf("p99 ≤ %s", fmtDur(limit)), meets: meets(p99 <= limit.Seconds()),
		})
	}
}
