package bench

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/superfly/ltx"
	"golang.org/x/sys/unix"

	"github.com/walrust/walrust/vfs/follow"
	"github.com/walrust/walrust/vfs/internal/ltxguard"
	"github.com/walrust/walrust/vfs/replica"
	"github.com/walrust/walrust/vfs/store"
)

// Go benchmarks of the two hot paths, for profiling one side at a time:
//
//	go test ./vfs/bench -run '^$' -bench 'Scan/walrust' -cpuprofile scan.prof
//	go test ./vfs/bench -run '^$' -bench StageSnapshot -cpuprofile stage.prof
//
// They share one 64 MiB database per process (WALRUST_BENCH_MB overrides
// the size), replicated through a file store.

type microWorld struct {
	db      *testDB
	replica string // the walrust replica's base file, bootstrapped
	wURI    string
	dURI    string
	hold    *sql.DB // keeps the replica open between benchmarks
}

var (
	microMu sync.Mutex
	micro   *microWorld
)

func microSetup(b *testing.B) *microWorld {
	b.Helper()
	microMu.Lock()
	defer microMu.Unlock()
	if micro != nil {
		return micro
	}
	mb := 64
	if s := os.Getenv("WALRUST_BENCH_MB"); s != "" {
		fmt.Sscan(s, &mb)
	}
	// Left in the temporary directory: no hook runs after the last
	// benchmark.
	dir, err := os.MkdirTemp("", "walrust-micro-")
	if err != nil {
		b.Fatal(err)
	}
	w := &microWorld{db: makeDB(b, dir, mb)}
	root := filepath.Join(dir, "store")
	if err := link(w.db.snap, filepath.Join(root, "ltx", "9", snapName)); err != nil {
		b.Fatal(err)
	}
	w.replica = filepath.Join(dir, "replica.db")
	w.wURI = fmt.Sprintf("file:%s?vfs=walrust&source=file://%s&interval=1m&timeout=10m", w.replica, root)
	w.dURI = fmt.Sprintf("file:%s?mode=ro", w.replica)
	if w.hold, err = sql.Open("sqlite3", w.wURI); err != nil {
		b.Fatal(err)
	}
	if err := w.hold.Ping(); err != nil {
		b.Fatal(err)
	}
	micro = w
	return w
}

// BenchmarkScan is a full-table count through each VFS: SQLite's cheapest
// per-page work, so the VFS's cost per page read shows most.
func BenchmarkScan(b *testing.B) {
	w := microSetup(b)
	for _, side := range []struct{ name, uri string }{{"walrust", w.wURI}, {"default", w.dURI}} {
		b.Run(side.name, func(b *testing.B) {
			db, err := sql.Open("sqlite3", side.uri)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			c, err := db.Conn(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			b.SetBytes(int64(w.db.pages) * 4096)
			for b.Loop() {
				var n int64
				if err := c.QueryRowContext(context.Background(), "SELECT count(*) FROM t").Scan(&n); err != nil || n != w.db.rows {
					b.Fatalf("count = %d, %v", n, err)
				}
			}
		})
	}
}

// BenchmarkLookup is point lookups by key through each VFS.
func BenchmarkLookup(b *testing.B) {
	w := microSetup(b)
	for _, side := range []struct{ name, uri string }{{"walrust", w.wURI}, {"default", w.dURI}} {
		b.Run(side.name, func(b *testing.B) {
			db, err := sql.Open("sqlite3", side.uri)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			db.SetMaxOpenConns(1)
			st, err := db.Prepare(lookupQuery)
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			rng := rand.New(rand.NewPCG(5, 5))
			var v []byte
			for b.Loop() {
				if err := st.QueryRow(1 + rng.Int64N(w.db.rows)).Scan(&v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPageRead is one 4 KiB page read by the replica's Go read path
// (what the VFS's xRead runs, without SQLite and cgo) against a bare pread
// of the same file.
func BenchmarkPageRead(b *testing.B) {
	w := microSetup(b)
	b.Run("Version.ReadAt", func(b *testing.B) {
		dir := b.TempDir()
		root := filepath.Join(dir, "store")
		if err := link(w.db.snap, filepath.Join(root, "ltx", "9", snapName)); err != nil {
			b.Fatal(err)
		}
		st, err := store.OpenFile(root)
		if err != nil {
			b.Fatal(err)
		}
		r, err := replica.Open(filepath.Join(dir, "r.db"), "file://"+root)
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		f := follow.Follow(r, st, follow.Options{Interval: 1 << 40})
		defer f.Close()
		if err := f.WaitReady(1 << 40); err != nil {
			b.Fatal(err)
		}
		v, err := r.Pin()
		if err != nil {
			b.Fatal(err)
		}
		defer v.Unpin()
		buf := make([]byte, 4096)
		rng := rand.New(rand.NewPCG(6, 6))
		b.SetBytes(4096)
		for b.Loop() {
			if _, err := v.ReadAt(buf, rng.Int64N(int64(w.db.pages))*4096); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pread", func(b *testing.B) {
		f, err := os.Open(w.replica)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		fd := int(f.Fd())
		buf := make([]byte, 4096)
		rng := rand.New(rand.NewPCG(6, 6))
		b.SetBytes(4096)
		for b.Loop() {
			if _, err := unix.Pread(fd, buf, rng.Int64N(int64(w.db.pages))*4096); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkStageSnapshot decodes the snapshot (held in memory: no store,
// no network) into a staged file and syncs it: a bootstrap's CPU and disk
// work.
func BenchmarkStageSnapshot(b *testing.B) {
	w := microSetup(b)
	snap, err := os.ReadFile(w.db.snap)
	if err != nil {
		b.Fatal(err)
	}
	hdr, _, err := ltx.DecodeHeader(bytes.NewReader(snap))
	if err != nil {
		b.Fatal(err)
	}
	want := ltxguard.Want{MinTXID: hdr.MinTXID, MaxTXID: hdr.MaxTXID, Snapshot: true}
	dir := b.TempDir()
	r, err := replica.Open(filepath.Join(dir, "r.db"), "file:///nowhere")
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	b.SetBytes(int64(w.db.pages) * 4096)
	for b.Loop() {
		s, err := r.StageSnapshot(context.Background(), bytes.NewReader(snap), want)
		if err != nil {
			b.Fatal(err)
		}
		s.Discard()
	}
}
