package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/ltxtest"
	"github.com/walrust/walrust/vfs/testkit/s3test"
)

// idle counts, at the server, the requests a caught-up replica makes per
// poll, with 1 and with 8 connections open. Polls are counted from the
// replica's own status: every distinct last_poll in PRAGMA walrust_status,
// sampled every 2 ms (far more often than the interval). The window starts
// and ends right after a poll, so no request is in flight at either end.
func (b *bench) idle() {
	t := b.t
	ctx := context.Background()
	srv := s3test.Start(t, "bkt")
	srv.Env(t)
	st, err := store.Open(ctx, srv.URL("bkt", "idle"), srv.Options())
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(b.dir, "idle")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	primPath := filepath.Join(dir, "primary.db")
	prim := openDB(t, "file:"+primPath+"?_journal_mode=DELETE&_synchronous=OFF")
	prim.SetMaxOpenConns(1)
	for _, q := range []string{"PRAGMA page_size=4096", "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", "INSERT INTO t (v) VALUES ('a')"} {
		if _, err := prim.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	pub := &ltxtest.Primary{Store: st, PageSize: 4096, NoChecksum: true}
	pub.Advance(ltxtest.ReadImage(t, primPath), 1)
	pub.Snapshot(t)
	if _, err := prim.Exec("INSERT INTO t (v) VALUES ('b')"); err != nil {
		t.Fatal(err)
	}
	pub.Commit(t, ltxtest.ReadImage(t, primPath))

	iv := b.cfg.idleInterval
	db := openDB(t, fmt.Sprintf("file:%s?vfs=walrust&source=%s&endpoint=%s&interval=%s",
		filepath.Join(dir, "replica.db"), srv.URL("bkt", "idle"), srv.Endpoint, iv))
	conns := []*sql.Conn{}
	addConn := func() {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := c.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 2 {
			t.Fatalf("count = %d, %v; want 2 (caught up)", n, err)
		}
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	addConn()

	type status struct {
		LastPoll time.Time   `json:"last_poll"`
		Store    store.Stats `json:"store"`
	}
	stat := func() status {
		var s string
		if err := conns[0].QueryRowContext(ctx, "PRAGMA walrust_status").Scan(&s); err != nil {
			t.Fatal(err)
		}
		var x status
		if err := json.Unmarshal([]byte(s), &x); err != nil {
			t.Fatal(err)
		}
		return x
	}
	// nextPoll waits until a poll has finished after prev.
	nextPoll := func(prev time.Time) status {
		deadline := time.Now().Add(10*iv + 10*time.Second)
		for {
			s := stat()
			if s.LastPoll.After(prev) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("idle: no poll after %s", prev)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	measure := func() {
		polls := b.cfg.scaled(b.cfg.idlePolls)
		s := nextPoll(stat().LastPoll)
		r0 := srv.Requests()
		c0 := s.Store
		for range polls {
			s = nextPoll(s.LastPoll)
		}
		r1 := srv.Requests()
		reqs := r1[len(r0):]
		kinds := map[string]int{}
		for _, r := range reqs {
			kinds[r.Kind]++
		}
		var kindList []string
		for _, k := range []string{"LIST", "GET", "HEAD", "PUT", "POST", "DELETE", "OTHER"} {
			if kinds[k] > 0 {
				kindList = append(kindList, fmt.Sprintf("%d %s", kinds[k], k))
			}
		}
		if len(kindList) == 0 {
			kindList = []string{"none"}
		}
		per := float64(len(reqs)) / float64(polls)
		b.add(row{
			group: "idle",
			what:  fmt.Sprintf("store requests per poll, %d connection(s) open, interval %s", len(conns), iv),
			walrust: fmt.Sprintf("%.2f (server log: %s in %d polls; the client counted %d LIST, %d GET)",
				per, strings.Join(kindList, ", "), polls, s.Store.Lists-c0.Lists, s.Store.Gets-c0.Gets),
			baseline: "1 LIST per poll (the least that can notice a new file)",
			a:        per, b: 1,
			target: "= 1", meets: meets(len(reqs) == polls),
		})
	}
	// The peer, on the same store and at the same interval, with as many
	// connections open in one process.
	peer := func() {
		if b.peerOn() {
			b.rows[len(b.rows)-1].peer = b.peerIdleCell(srv, "bkt", "idle", iv, b.cfg.scaled(b.cfg.idlePolls), len(conns))
		}
	}
	measure()
	peer()
	for len(conns) < 8 {
		addConn()
	}
	measure()
	peer()
	b.idleBackoff(srv)
}
