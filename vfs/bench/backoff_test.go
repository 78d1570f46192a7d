package bench

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/ltxtest"
	"github.com/walrust/walrust/vfs/testkit/s3test"
)

// idleBackoff compares, side by side on one server, the LIST requests two
// idle replicas make: one at a fixed interval, one backing off to
// max_interval (each following its own prefix, counted from the server's
// log over the same window), scaled to an hour. Then it measures the lag of
// the first change after the back-off reached max_interval: from the PUT's
// return to the row being visible.
func (b *bench) idleBackoff(srv *s3test.Server) {
	t := b.t
	ctx := context.Background()
	iv, maxIv, window := b.cfg.backoffInterval, b.cfg.backoffMax, b.cfg.backoffWindow
	type follower struct {
		prefix string
		db     *sql.DB
		pub    *ltxtest.Primary
		prim   *sql.DB
		path   string
	}
	start := func(prefix, extra string) *follower {
		st, err := store.Open(ctx, srv.URL("bkt", prefix), srv.Options())
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(b.dir, prefix)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		f := &follower{prefix: prefix, path: filepath.Join(dir, "primary.db")}
		f.prim = openDB(t, "file:"+f.path+"?_journal_mode=DELETE&_synchronous=OFF")
		f.prim.SetMaxOpenConns(1)
		for _, q := range []string{"PRAGMA page_size=4096", "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", "INSERT INTO t (v) VALUES ('a')"} {
			if _, err := f.prim.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
		f.pub = &ltxtest.Primary{Store: st, PageSize: 4096, NoChecksum: true}
		f.pub.Advance(ltxtest.ReadImage(t, f.path), 1)
		f.pub.Snapshot(t)
		f.db = openDB(t, fmt.Sprintf("file:%s?vfs=walrust&source=%s&endpoint=%s&interval=%s%s",
			filepath.Join(dir, "replica.db"), srv.URL("bkt", prefix), srv.Endpoint, iv, extra))
		var n int
		if err := f.db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 1 {
			t.Fatalf("%s: count = %d, %v; want 1", prefix, n, err)
		}
		return f
	}
	fixed := start("fixed", "")
	backoff := start("backoff", "&max_interval="+maxIv.String())

	// Past the first doublings, then the window, both replicas idle.
	time.Sleep(2 * maxIv)
	mark := len(srv.Requests())
	time.Sleep(window) // the measuring window, not an assertion
	lists := func(prefix string) (n int) {
		for _, r := range srv.Requests()[mark:] {
			if r.Kind == "LIST" && strings.Contains(r.Query, "prefix="+prefix+"%2F") {
				n++
			}
		}
		return n
	}
	perHour := func(n int) float64 { return float64(n) * float64(time.Hour) / float64(window) }
	nFixed, nBackoff := lists(fixed.prefix), lists(backoff.prefix)
	if nFixed == 0 || nBackoff == 0 {
		t.Fatalf("idle back-off: %d LIST at a fixed interval, %d backing off in %s; want some of each (is the prefix in the query?)", nFixed, nBackoff, window)
	}
	a, base := perHour(nBackoff), perHour(nFixed)
	b.add(row{
		group:    "idle",
		what:     fmt.Sprintf("LIST requests per hour, interval %s backing off to max_interval %s (counted over %s)", iv, maxIv, window),
		walrust:  fmt.Sprintf("%.0f/h (%d in %s)", a, nBackoff, window),
		baseline: fmt.Sprintf("fixed interval %s: %.0f/h (%d in the same %s)", iv, base, nFixed, window),
		a:        a, b: base,
		target: "≤ 0.2", meets: meets(a <= 0.2*base),
	})

	// The first change after the back-off: a new row on the primary,
	// PUT, and the clock runs until the replica shows it.
	if _, err := backoff.prim.Exec("INSERT INTO t (v) VALUES ('b')"); err != nil {
		t.Fatal(err)
	}
	backoff.pub.Commit(t, ltxtest.ReadImage(t, backoff.path))
	put := time.Now()
	for {
		var n int
		if err := backoff.db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 2 {
			break
		}
		if time.Since(put) > 10*maxIv+10*time.Second {
			t.Fatalf("idle back-off: the first change after an idle spell never showed")
		}
		time.Sleep(2 * time.Millisecond)
	}
	lag := time.Since(put)
	bound := maxIv + iv
	b.add(row{
		group:    "idle",
		what:     fmt.Sprintf("lag of the first change after backing off to max_interval %s", maxIv),
		walrust:  fmt.Sprintf("%d ms", lag.Milliseconds()),
		baseline: fmt.Sprintf("max_interval + interval: %d ms", bound.Milliseconds()),
		a:        float64(lag), b: float64(bound),
		target: "≤ 1", meets: meets(lag <= bound),
	})
}
