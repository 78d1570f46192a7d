package bench

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"
)

// lazyOut is what a bootstrap child measures beyond childOut: the first
// query's time, point lookups while the snapshot hydrates and after, and
// (bootstrap=lazy) when the hydration ended.
type lazyOut struct {
	HydratedSec  float64 `json:"hydrated_seconds"` // open → the hydrated image installed
	DuringN      int     `json:"lookups_during"`
	DuringMicros float64 `json:"lookup_us_during"` // mean, while hydrating
	AfterMicros  float64 `json:"lookup_us_after"`  // mean, warm, once local
	DemandGets   int64   `json:"demand_gets"`
}

// lookupsDuring caps the point lookups a lazy child times while its
// replica hydrates (each may fetch from the store).
const lookupsDuring = 500

// lookupsAfter is how many point lookups a bootstrap child times once its
// replica is all local.
const lookupsAfter = 2000

// lookup runs one point lookup of a random row.
func lookup(t *testing.T, db *sql.DB, rows int64) {
	var v string
	if err := db.QueryRow("SELECT v FROM t WHERE id = ?", 1+rand.Int64N(rows)).Scan(&v); err != nil {
		t.Fatalf("lookup: %v", err)
	}
}

// benchChildBoot is the bootstrap child, full or lazy: open → first
// query, then (lazy) lookups while it hydrates until it is installed,
// then lookups on the local file.
func benchChildBoot(t *testing.T, out *childOut, src, ep, dir, mode string) {
	start := time.Now()
	db, err := sql.Open("sqlite3", fmt.Sprintf("file:%s?vfs=walrust&source=%s&endpoint=%s&interval=1m&timeout=10m&bootstrap=%s",
		filepath.Join(dir, "replica.db"), src, ep, mode))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var rows int64
	if err := db.QueryRow("SELECT max(id) FROM t").Scan(&rows); err != nil || rows <= 0 {
		t.Fatalf("first query: %d, %v", rows, err)
	}
	out.Seconds = time.Since(start).Seconds()
	type status struct {
		Bytes     int64 `json:"-"`
		Hydration *struct {
			DemandGets int64 `json:"demand_gets"`
		} `json:"hydration"`
		Hydrated *struct {
			DemandGets int64 `json:"demand_gets"`
		} `json:"hydrated"`
		Store struct {
			Bytes int64 `json:"bytes"`
		} `json:"store"`
	}
	read := func() status {
		var s string
		var st status
		if err := db.QueryRow("PRAGMA walrust_status").Scan(&s); err == nil {
			json.Unmarshal([]byte(s), &st)
		}
		return st
	}
	var lo lazyOut
	if mode == "lazy" {
		var spent time.Duration
		for i := 0; ; i++ {
			if i%16 == 0 {
				if st := read(); st.Hydration == nil {
					if st.Hydrated != nil {
						lo.DemandGets = st.Hydrated.DemandGets
					}
					break
				}
			}
			if lo.DuringN == lookupsDuring {
				// Enough samples: let the stream have the machine, so
				// that the hydration's time is mostly its own.
				time.Sleep(2 * time.Millisecond)
				continue
			}
			t0 := time.Now()
			lookup(t, db, rows)
			spent += time.Since(t0)
			lo.DuringN++
		}
		lo.HydratedSec = time.Since(start).Seconds()
		if lo.DuringN > 0 {
			lo.DuringMicros = float64(spent.Microseconds()) / float64(lo.DuringN)
		}
	}
	t0 := time.Now()
	for range lookupsAfter {
		lookup(t, db, rows)
	}
	lo.AfterMicros = float64(time.Since(t0).Microseconds()) / lookupsAfter
	out.HWMKiB = procStatusKiB("VmHWM")
	out.Bytes = read().Store.Bytes
	out.Lazy = &lo
}

// lazyRows are the bootstrap=lazy rows: open → first query against the
// full bootstrap (and the Litestream VFS's cold start), the hydration
// against one GET of the snapshot to a file, and point lookups while it
// hydrates and after, against the full bootstrap's replica.
func (b *bench) lazyRows(mb int, snapMiB float64, lazy, full, down []childOut, peer string) {
	if len(lazy) == 0 {
		return
	}
	var first, hyd, during, after, fullFirst, fullAfter, dl []float64
	var demand int64
	var hwm int64
	duringN := 0
	for _, x := range lazy {
		first = append(first, x.Seconds)
		hyd = append(hyd, x.Lazy.HydratedSec)
		if x.Lazy.DuringN > 0 {
			during = append(during, x.Lazy.DuringMicros)
		}
		duringN += x.Lazy.DuringN
		after = append(after, x.Lazy.AfterMicros)
		demand = max(demand, x.Lazy.DemandGets)
		hwm = max(hwm, x.HWMKiB)
	}
	for _, x := range full {
		fullFirst = append(fullFirst, x.Seconds)
		if x.Lazy != nil {
			fullAfter = append(fullAfter, x.Lazy.AfterMicros)
		}
	}
	for _, x := range down {
		dl = append(dl, x.Seconds)
	}
	n := len(lazy)
	lf, ff := median(first), median(fullFirst)
	b.add(row{
		group:    "bootstrap",
		what:     fmt.Sprintf("bootstrap=lazy, %d MiB database: open → first query (n=%d)", mb, n),
		walrust:  fmt.Sprintf("%s (lazy; peak RSS %d MiB)", fmtSec(lf), hwm>>10),
		baseline: fmt.Sprintf("%s: bootstrap=full", fmtSec(ff)),
		a:        lf, b: ff,
		target: "≪ 1", meets: meets(lf < ff),
		peer: peer,
	})
	h, d := median(hyd), median(dl)
	b.add(row{
		group:    "bootstrap",
		what:     fmt.Sprintf("bootstrap=lazy, %d MiB database (%.0f MiB snapshot): open → hydrated and installed, the first %d lookups running meanwhile (n=%d, ≤ %d demand GETs)", mb, snapMiB, lookupsDuring, n, demand),
		walrust:  fmtSec(h),
		baseline: fmt.Sprintf("%s: one GET, io.Copy to a file + fsync", fmtSec(d)),
		a:        h, b: d,
		target: "≤ 1.3", meets: meets(h <= 1.3*d),
	})
	if len(during) > 0 {
		du, fa := median(during), median(fullAfter)
		b.add(row{
			group:    "bootstrap",
			what:     fmt.Sprintf("bootstrap=lazy, %d MiB: point lookup while hydrating (%d lookups in all)", mb, duringN),
			walrust:  fmt.Sprintf("%.0f µs", du),
			baseline: fmt.Sprintf("%.0f µs: bootstrap=full, once open", fa),
			a:        du, b: fa,
			target: "—", meets: "—",
		})
	}
	af, fa := median(after), median(fullAfter)
	b.add(row{
		group:    "bootstrap",
		what:     fmt.Sprintf("bootstrap=lazy, %d MiB: point lookup once hydrated (%d a child)", mb, lookupsAfter),
		walrust:  fmt.Sprintf("%.1f µs", af),
		baseline: fmt.Sprintf("%.1f µs: bootstrap=full", fa),
		a:        af, b: fa,
		target: "≤ 1.05", meets: meets(af <= 1.05*fa),
	})
}
