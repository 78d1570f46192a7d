package bench

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/follow"
	"github.com/walrust/walrust/vfs/replica"
	"github.com/walrust/walrust/vfs/store"
)

// apply measures how fast a follower catches up through a stream of small
// LTX files (applyFiles files of applyPages pages each, at level 0 of a file
// store, so that the store costs next to nothing) until they are folded
// into the base file and the state file names the last TXID; against
// writing the same page images into a copy of the same database with
// pwrite, and one fsync per file.
func (b *bench) apply(d *data) {
	t := b.t
	base := d.db(b.cfg.bootMB[0])
	dir := filepath.Join(b.dir, "apply")
	l0 := filepath.Join(dir, "l0")
	if err := os.MkdirAll(l0, 0o755); err != nil {
		t.Fatal(err)
	}
	nFiles, nPages := b.cfg.applyFiles, b.cfg.applyPages
	const ps = 4096

	// The files: each changes nPages distinct pages (not page 1) of the
	// database, a few bytes of each, so they compress like real pages.
	src, err := os.Open(base.path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	type pageWrite struct {
		pgno uint32
		data []byte
	}
	writes := make([][]pageWrite, nFiles)
	names := make([]string, nFiles)
	rng := rand.New(rand.NewPCG(4, 4))
	lock := ltx.LockPgno(ps)
	for i := range nFiles {
		var pgnos []uint32
		for len(pgnos) < nPages {
			p := 2 + uint32(rng.Int64N(int64(base.pages-1)))
			if p != lock && !slices.Contains(pgnos, p) {
				pgnos = append(pgnos, p)
			}
		}
		slices.Sort(pgnos)
		txid := ltx.TXID(2 + i)
		names[i] = ltx.FormatFilename(txid, txid)
		f, err := os.Create(filepath.Join(l0, names[i]))
		if err != nil {
			t.Fatal(err)
		}
		enc, err := ltx.NewEncoder(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := enc.EncodeHeader(ltx.Header{
			Version: ltx.Version, Flags: ltx.HeaderFlagNoChecksum, PageSize: ps, Commit: base.pages,
			MinTXID: txid, MaxTXID: txid, Timestamp: time.Now().UnixMilli(),
		}); err != nil {
			t.Fatal(err)
		}
		for _, p := range pgnos {
			data := make([]byte, ps)
			if _, err := src.ReadAt(data, int64(p-1)*ps); err != nil {
				t.Fatal(err)
			}
			for k := range 16 {
				data[ps-64+k] ^= byte(i + k + 1)
			}
			if err := enc.EncodePage(ltx.PageHeader{Pgno: p}, data); err != nil {
				t.Fatal(err)
			}
			writes[i] = append(writes[i], pageWrite{p, data})
		}
		if err := enc.Close(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	last := ltx.TXID(1 + nFiles)

	var visible []time.Duration
	walrust := func(int) time.Duration {
		rep, err := os.MkdirTemp(dir, "rep-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(rep)
		root := filepath.Join(rep, "store")
		if err := link(base.snap, filepath.Join(root, "ltx", "9", snapName)); err != nil {
			t.Fatal(err)
		}
		st, err := store.OpenFile(root)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(rep, "replica.db")
		r, err := replica.Open(path, "file://"+root)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		f := follow.Follow(r, st, follow.Options{Interval: 10 * time.Millisecond})
		defer f.Close()
		if err := f.WaitReady(5 * time.Minute); err != nil {
			t.Fatal(err)
		}
		// All files appear at once: hard links made beside level 0, then
		// renamed into place.
		staging := filepath.Join(root, "ltx", ".0")
		for _, n := range names {
			if err := link(filepath.Join(l0, n), filepath.Join(staging, n)); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		if err := os.Rename(staging, filepath.Join(root, "ltx", "0")); err != nil {
			t.Fatal(err)
		}
		var seen time.Duration
		for {
			now := time.Since(start)
			if seen == 0 && r.Head().TXID == last {
				seen = now
			}
			if seen != 0 {
				var s replica.State
				if b, err := os.ReadFile(path + "-replica-state"); err == nil && json.Unmarshal(b, &s) == nil && s.TXID == last {
					visible = append(visible, seen)
					return now
				}
			}
			if now > 10*time.Minute {
				t.Fatalf("apply: no fold to TXID %s after %s (head %s; %+v)", last, now, r.Head().TXID, f.Status())
			}
			time.Sleep(time.Millisecond)
		}
	}
	raw := func(int) time.Duration {
		path := filepath.Join(dir, "raw.db")
		if err := copyFile(base.path, path); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(path)
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for _, file := range writes {
			for _, w := range file {
				if _, err := f.WriteAt(w.data, int64(w.pgno-1)*ps); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
		}
		return time.Since(start)
	}
	p := interleave(b.cfg.scaled(b.cfg.applyReps), walrust, raw)
	_, noise := p.ratio()
	pages := float64(nFiles * nPages)
	wt, rt, vt := median(durs(p.a)), median(durs(p.b)), median(durs(visible))
	b.add(row{
		group:    "apply",
		what:     fmt.Sprintf("catch up through %d L0 files × %d pages (file store) until folded (n=%d)", nFiles, nPages, len(p.a)),
		walrust:  fmt.Sprintf("%.0f pages/s (%s; all visible after %s)", pages/wt, fmtSec(wt), fmtSec(vt)),
		baseline: fmt.Sprintf("%.0f pages/s (%s): pwrite the same pages, fsync per file", pages/rt, fmtSec(rt)),
		a:        wt, b: rt, noise: noise,
		target: "≤ 1.3", meets: meets(wt <= 1.3*rt),
	})
}

// copyFile writes a private copy of src at dst (never a hard link: the
// copy is written to).
func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}
