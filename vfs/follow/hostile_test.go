package follow

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/replica"
	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/ltxtest"
	"github.com/walrust/walrust/vfs/testkit/worldtest"
)

// What a hostile store (or a broken producer) can serve: files with a
// correct file checksum whose header, pages or sizes lie. Each must be
// rejected before it changes what the replica serves, and before it sizes
// anything by what it claims.

// imagePages are the pages of img, as crafted frames, but those in skip.
func imagePages(img []byte, pageSize uint32, skip ...uint32) []ltxtest.CraftPage {
	var out []ltxtest.CraftPage
	for pgno := uint32(1); int64(pgno)*int64(pageSize) <= int64(len(img)); pgno++ {
		if slices.Contains(skip, pgno) {
			continue
		}
		off := int64(pgno-1) * int64(pageSize)
		out = append(out, ltxtest.CraftPage{Pgno: pgno, Data: img[off : off+int64(pageSize)]})
	}
	return out
}

// logDirBytes is the size of the replica's files: the base file and
// everything in its log directory.
func logDirBytes(t *testing.T, w *world) int64 {
	t.Helper()
	var total int64
	filepath.WalkDir(w.Path+"-replica-log", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				total += fi.Size()
			}
		}
		return nil
	})
	if fi, err := os.Stat(w.Path); err == nil {
		total += fi.Size()
	}
	return total
}

// TestHeaderMustMatchName: a level-0 file named 2-2 whose header says
// 2-100 used to make the replica claim TXID 100 with TXID 2's data; it is
// rejected, the replica stays at TXID 1, and the real files still apply.
func TestHeaderMustMatchName(t *testing.T) {
	w := newWorld(t, 512, true)
	r, f := w.bootstrapped()
	w.Ref.Exec("INSERT INTO t (k, v) VALUES ('a', 'b')")
	w.Advance(w.Ref.Image())
	lying := w.Encode(2, 2)
	// The same pages under a header that claims TXIDs 2-100.
	hdr, _, _ := ltx.DecodeHeader(bytes.NewReader(lying))
	hdr.MaxTXID = 100
	w.WriteRaw(worldtest.L0(2), ltxtest.Craft(hdr, imagePagesDiff(w, 1, 2), 0))

	err := step(t, f)
	if err == nil || !strings.Contains(err.Error(), "its name says") {
		t.Fatalf("step over a file whose header lies about its TXIDs: %v", err)
	}
	if h := r.Head(); h.TXID != 1 {
		t.Fatalf("replica claims TXID %d after a lying file; want 1", h.TXID)
	}
	if !logContains(w.Logs, "rejected LTX file") {
		t.Fatalf("no rejection logged:\n%s", w.Logs)
	}

	// The producer writes the real file again, and the next one.
	time.Sleep(10 * time.Millisecond) // a new mtime: a copy written since
	w.Put(0, lying)
	w.Ref.Exec("INSERT INTO t (k, v) VALUES ('c', 'd')")
	w.Commit()
	mustStep(t, f)
	w.checkHead(r, 3, "after the real files")
}

// imagePagesDiff is every page that differs between the images at two
// TXIDs, plus those past the older one's end.
func imagePagesDiff(w *world, from, to ltx.TXID) []ltxtest.CraftPage {
	prev, cur := w.Image(from), w.Image(to)
	var out []ltxtest.CraftPage
	for _, p := range imagePages(cur, w.Pub.PageSize) {
		off := int64(p.Pgno-1) * int64(w.Pub.PageSize)
		if off+int64(w.Pub.PageSize) <= int64(len(prev)) && bytes.Equal(p.Data, prev[off:off+int64(w.Pub.PageSize)]) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// TestSnapshotHeaderMustMatchName: the same for a snapshot named 1-1 whose
// header says 1-9.
func TestSnapshotHeaderMustMatchName(t *testing.T) {
	w := newWorld(t, 512, true)
	img := w.Image(1)
	w.WriteRaw(store.FileInfo{Level: store.SnapshotLevel, MinTXID: 1, MaxTXID: 1},
		ltxtest.Craft(w.CraftHeader(1, 9, uint32(len(img))/w.Pub.PageSize), imagePages(img, w.Pub.PageSize), 0))
	r := w.openReplica()
	defer r.Close()
	f := w.manual(r)
	if err := step(t, f); err == nil || !strings.Contains(err.Error(), "its name says") {
		t.Fatalf("bootstrap from a snapshot whose header lies: %v", err)
	}
	if r.Head() != nil {
		t.Fatalf("bootstrapped at TXID %d from a lying snapshot", r.Head().TXID)
	}
}

// TestSnapshotWithHoles: a snapshot must hold every page 1..commit but the
// lock page. One that skips a page, or stops short of its commit, used to
// be installed with zero pages; and one whose only other page is far away
// used to write gigabytes of zeros before its checksum was even checked.
func TestSnapshotWithHoles(t *testing.T) {
	for _, tc := range []struct {
		name  string
		craft func(w *world, img []byte, commit uint32) []byte
		err   string
	}{
		{"missing middle page", func(w *world, img []byte, commit uint32) []byte {
			return ltxtest.Craft(w.CraftHeader(1, 1, commit), imagePages(img, w.Pub.PageSize, 2), 0)
		}, "snapshot skips from page 1 to page 3"},
		{"fewer pages than commit", func(w *world, img []byte, commit uint32) []byte {
			return ltxtest.Craft(w.CraftHeader(1, 1, commit+5), imagePages(img, w.Pub.PageSize), 0)
		}, "before its commit"},
		{"one far page", func(w *world, img []byte, commit uint32) []byte {
			far := uint32(4_000_000) // 2 GB of zeros at 512-byte pages
			pages := append(imagePages(img, w.Pub.PageSize)[:1], ltxtest.CraftPage{Pgno: far, Data: img[:w.Pub.PageSize]})
			return ltxtest.Craft(w.CraftHeader(1, 1, far), pages, 0)
		}, "cannot hold the 3999999 pages"}, // refused from its header and listed size
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, 512, true)
			img := w.Image(1)
			if len(img) < 3*512 {
				t.Fatalf("reference image of %d bytes: want at least 3 pages", len(img))
			}
			snap := store.FileInfo{Level: store.SnapshotLevel, MinTXID: 1, MaxTXID: 1}
			w.WriteRaw(snap, tc.craft(w, img, uint32(len(img))/w.Pub.PageSize))
			r := w.openReplica()
			defer r.Close()
			f := w.manual(r)
			err := step(t, f)
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, replica.ErrCorrupt) {
				t.Fatalf("bootstrap: %v; want a rejection with %q", err, tc.err)
			}
			if r.Head() != nil {
				t.Fatalf("installed a snapshot with holes (TXID %d)", r.Head().TXID)
			}
			if n := logDirBytes(t, w); n > 1<<20 {
				t.Fatalf("the replica's files take %d bytes after a rejected snapshot", n)
			}
		})
	}
}

// TestAbsurdCommit: a commit of 2^32-1 pages (16 TiB at 4 KiB) is refused
// from its header, before any file is sized by it.
func TestAbsurdCommit(t *testing.T) {
	w := newWorld(t, 4096, true)
	img := w.Image(1)
	w.WriteRaw(store.FileInfo{Level: store.SnapshotLevel, MinTXID: 1, MaxTXID: 1},
		ltxtest.Craft(w.CraftHeader(1, 1, 0xFFFFFFFF), imagePages(img, w.Pub.PageSize), 0))
	r := w.openReplica()
	defer r.Close()
	f := w.manual(r)
	if err := step(t, f); err == nil || !strings.Contains(err.Error(), "exceeds the maximum size") {
		t.Fatalf("bootstrap from a snapshot of 2^32-1 pages: %v", err)
	}
	if n := logDirBytes(t, w); n > 1<<20 {
		t.Fatalf("the replica's files take %d bytes", n)
	}
}

// TestHugeFrame: a 174-byte file whose page frame claims 4 GiB used to make
// the decoder allocate it; the file is rejected and nothing of the sort is
// allocated.
func TestHugeFrame(t *testing.T) {
	w := newWorld(t, 512, true)
	r, f := w.bootstrapped()
	huge := uint32(0xFFFFFFFF)
	w.WriteRaw(worldtest.L0(2), ltxtest.Craft(w.CraftHeader(2, 2, 4),
		[]ltxtest.CraftPage{{Pgno: 2, Data: make([]byte, 512), Size: &huge}}, 0))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := step(t, f)
	runtime.ReadMemStats(&after)
	if err == nil || !errors.Is(err, replica.ErrCorrupt) || !strings.Contains(err.Error(), "compressed size 4294967295") {
		t.Fatalf("step over a 4 GiB frame: %v", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Fatalf("applying a 4 GiB frame allocated %d MiB", grew>>20)
	}
	if r.Head().TXID != 1 {
		t.Fatalf("replica at TXID %d", r.Head().TXID)
	}
}

// TestLocalErrorNotRejected: a failure of the replica's own disk (here its
// log directory removed under it; ENOSPC and EMFILE alike) says nothing
// about the file: it is retried, not rejected, and applies once the disk is
// back.
func TestLocalErrorNotRejected(t *testing.T) {
	w := newWorld(t, 512, true)
	r, f := w.bootstrapped()
	w.Ref.Exec("INSERT INTO t (k, v) VALUES ('a', 'b')")
	w.Commit()
	logDir := w.Path + "-replica-log"
	if err := os.RemoveAll(logDir); err != nil {
		t.Fatal(err)
	}
	err := step(t, f)
	if err == nil || errors.Is(err, replica.ErrCorrupt) || !strings.Contains(err.Error(), "retrying") {
		t.Fatalf("step with the log directory gone: %v; want a local error, retried", err)
	}
	if logContains(w.Logs, "rejected") {
		t.Fatalf("a local error rejected the file:\n%s", w.Logs)
	}
	if err := os.Mkdir(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	mustStep(t, f)
	w.checkHead(r, 2, "after the log directory is back")
}
