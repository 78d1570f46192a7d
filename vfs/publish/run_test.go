package publish

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A writer keeps committing while the publisher copies: every published
// state must be a whole transaction, and the last one the whole database.
func TestPublishWhileWriting(t *testing.T) {
	for _, mode := range []string{"delete", "wal"} {
		t.Run(mode, func(t *testing.T) {
			p := newPrimary(t, mode, 4096)
			st := newFileStore(t)
			newTable(t, p)
			p.exec("CREATE TABLE counter (n INTEGER)")
			p.exec("INSERT INTO counter SELECT count(*) FROM t")
			pub := publisherFor(t, p, st, "")

			// A second connection writes; each transaction adds rows and
			// bumps the counter to the number of rows in t.
			w, err := sql.Open("sqlite3", "file:"+p.path+"?_busy_timeout=10000")
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			w.SetMaxOpenConns(1)
			ctx, stop := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			defer wg.Wait()
			defer stop()
			var commits atomic.Int64
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 1000; ctx.Err() == nil; i++ {
					tx, err := w.Begin()
					if err != nil {
						t.Error(err)
						return
					}
					_, err1 := tx.Exec("INSERT INTO t (id, name, body) VALUES (?, 'w', ?)", i, body(i, 500))
					_, err2 := tx.Exec("UPDATE counter SET n = (SELECT count(*) FROM t)")
					if err1 != nil || err2 != nil {
						tx.Rollback()
						t.Error(err1, err2)
						return
					}
					if err := tx.Commit(); err != nil {
						t.Error(err)
						return
					}
					commits.Add(1)
				}
			}()

			deadline := time.Now().Add(1500 * time.Millisecond)
			published := 0
			for time.Now().Before(deadline) || published < 3 {
				res := publishOnce(t, pub)
				if !res.Changed {
					continue
				}
				published++
				rebuilt, pos := rebuild(t, st)
				if pos.TXID != res.TXID {
					t.Fatalf("rebuilt to %d, published %d", pos.TXID, res.TXID)
				}
				checkConsistent(t, rebuilt)
			}
			stop()
			wg.Wait()
			res := publishOnce(t, pub)
			verifyStore(t, p, st, res)
			t.Logf("%d commits, %d published files", commits.Load(), res.TXID)
		})
	}
}

// checkConsistent opens a rebuilt database and checks the writer's
// invariant: the counter equals the number of rows.
func checkConsistent(t *testing.T, path string) {
	t.Helper()
	db := openRebuilt(t, path)
	defer db.Close()
	var ok string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity_check: %q %v", ok, err)
	}
	var n, rows int
	if err := db.QueryRow("SELECT (SELECT n FROM counter), (SELECT count(*) FROM t)").Scan(&n, &rows); err != nil {
		t.Fatal(err)
	}
	if n != rows {
		t.Fatalf("counter %d but %d rows: the copy mixes transactions", n, rows)
	}
}

func TestRun(t *testing.T) {
	p := newPrimary(t, "wal", 4096)
	st := newFileStore(t)
	newTable(t, p)
	var mu sync.Mutex
	var results []Result
	published := make(chan struct{}, 100)
	pub, err := New(p.path, st, Options{
		WorkDir: t.TempDir(),
		OnPublish: func(r Result) {
			mu.Lock()
			results = append(results, r)
			mu.Unlock()
			published <- struct{}{}
		},
		OnError: func(err error) { t.Error(err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pub.Run(ctx, 10*time.Millisecond) }()

	wait := func() {
		t.Helper()
		select {
		case <-published:
		case <-time.After(10 * time.Second):
			t.Fatal("nothing published")
		}
	}
	wait()
	insertRows(t, p, 100, 10, 100)
	wait()
	insertRows(t, p, 200, 10, 100)
	wait()
	time.Sleep(50 * time.Millisecond) // idle ticks publish nothing
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(results) != 3 || !results[0].Snapshot || results[2].TXID != 3 {
		t.Fatalf("results %+v", results)
	}
	verifyStore(t, p, st, results[2])
}

func TestProgress(t *testing.T) {
	p := newPrimary(t, "delete", 4096)
	st := newFileStore(t)
	newTable(t, p)
	insertRows(t, p, 1000, 2000, 1000) // about 2 MB
	var mu sync.Mutex
	phases := map[string]Progress{}
	pub, err := New(p.path, st, Options{
		WorkDir:           t.TempDir(),
		ProgressThreshold: 1,
		Progress: func(pr Progress) {
			mu.Lock()
			defer mu.Unlock()
			if pr.Done > pr.Total || pr.Done < phases[pr.Phase].Done {
				t.Errorf("progress goes backwards or overshoots: %+v", pr)
			}
			phases[pr.Phase] = pr
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	res := publishOnce(t, pub)
	mu.Lock()
	defer mu.Unlock()
	for _, phase := range []string{"snapshot", "upload"} {
		pr, ok := phases[phase]
		if !ok || pr.Done != pr.Total || pr.Percent() != 100 {
			t.Fatalf("phase %s: last report %+v (all: %+v)", phase, pr, phases)
		}
	}
	if phases["upload"].Total != res.File.Size || phases["snapshot"].Total != int64(res.Commit)*4096 {
		t.Fatalf("totals: %+v, result %+v", phases, res)
	}
}

// Once a publish found the database published, publishes that follow read
// nothing whole until the database's files change; in WAL mode not even
// then: changes are read from the log.
func TestIdleSkipsCopy(t *testing.T) {
	for _, mode := range []string{"delete", "wal"} {
		t.Run(mode, func(t *testing.T) {
			p := newPrimary(t, mode, 4096)
			st := newFileStore(t)
			newTable(t, p)
			var copies atomic.Int64
			pub, err := New(p.path, st, Options{
				WorkDir:           t.TempDir(),
				ProgressThreshold: 1,
				Progress: func(pr Progress) {
					if (pr.Phase == "compare" || pr.Phase == "snapshot") && pr.Done == pr.Total {
						copies.Add(1)
					}
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			expect(t, publishOnce(t, pub), true, true, 1)
			for range 5 {
				expect(t, publishOnce(t, pub), false, false, 1)
			}
			if n := copies.Load(); n != 1 {
				t.Fatalf("%d whole reads for one change and five idle publishes", n)
			}
			for i := range 3 { // back-to-back commits, each seen
				insertRows(t, p, 1000+i, 1, 10)
				res := publishOnce(t, pub)
				expect(t, res, true, false, uint64(2+i))
			}
			want := int64(4) // rollback mode compares the whole database
			if mode == "wal" {
				want = 1
			}
			if n := copies.Load(); n != want {
				t.Fatalf("%s mode: %d whole reads for four changes, want %d", mode, n, want)
			}
			verifyStore(t, p, st, publishOnce(t, pub))
		})
	}
}
