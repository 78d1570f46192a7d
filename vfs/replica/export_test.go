package replica

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/testkit/ltxtest"
	"github.com/walrust/walrust/vfs/testkit/worldtest"
)

// commitImage publishes img as the next TXID at level 0.
func (w *world) commitImage(img []byte) ltx.TXID {
	w.T.Helper()
	prev := w.Pub.TXID
	txid := w.Advance(img)
	w.Put(0, w.Encode(prev+1, txid))
	return txid
}

// asWAL is img with the header of a WAL-mode primary: file format bytes 2,
// and a change counter of its own (a WAL primary does not bump it).
func asWAL(img []byte) []byte {
	img = slices.Clone(img)
	img[18], img[19] = 2, 2
	copy(img[24:28], []byte{0, 0, 0x12, 0x34})
	return img
}

// TestExportIsThePrimarysFile: Export writes the primary's own file at the
// head, byte for byte: page 1's header as the primary wrote it (WAL mode
// included) whether page 1 came in the last file or long before it, and
// the database checksum of the lineage, with and without checksums in the
// files.
func TestExportIsThePrimarysFile(t *testing.T) {
	for _, noChecksum := range []bool{false, true} {
		t.Run(map[bool]string{false: "checksums", true: "no checksums"}[noChecksum], func(t *testing.T) {
			w := newWorld(t, 4096, noChecksum)
			w.InsertRows(20, 300)
			w.AdvanceRef()
			r, f := w.bootstrapped()
			if st, _ := ReadState(w.Path); !bytes.Equal(st.Page1Header, w.Image(w.Pub.TXID)[:headerSize]) {
				t.Fatalf("state after bootstrap keeps header %x, want the snapshot's", st.Page1Header)
			}
			w.InsertRows(5, 300)
			w.commitImage(asWAL(w.Ref.Image()))
			mustStep(t, f)
			checkExport(t, w, r, true)

			// A change that leaves page 1 alone: the fold reads page 1
			// from the base file (patched) and keeps the recorded header.
			img := slices.Clone(w.Image(w.Pub.TXID))
			img[len(img)-10] ^= 0xff
			w.commitImage(img)
			mustStep(t, f)
			checkExport(t, w, r, true)
		})
	}
}

func checkExport(t *testing.T, w *world, r *Replica, wal bool) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.db")
	ex, err := r.Export(context.Background(), out)
	if err != nil {
		t.Fatal(err)
	}
	head := w.Pub.TXID
	got, want := ltxtest.ReadImage(t, out), w.Image(head)
	if !bytes.Equal(got, want) {
		t.Fatalf("exported file differs from the primary's at TXID %d: first at byte %d", head, worldtest.FirstDiff(got, want))
	}
	if ex.TXID != head || !ex.HeaderKnown || ex.WAL != wal || ex.Commit != uint32(len(want)/4096) {
		t.Fatalf("Exported = %+v; want TXID %d, header known, WAL %v", ex, head, wal)
	}
	if sum := ltxtest.Checksum(want, 4096); ex.Checksum != sum {
		t.Fatalf("exported checksum %s, want %s", ex.Checksum, sum)
	}
}

// TestExportChunks: the copy goes a chunk of pages at a time; with chunks
// of 3 pages (and one of less than a page) over a database that is not a
// multiple of them, the file is still the primary's, byte for byte.
func TestExportChunks(t *testing.T) {
	w := newWorld(t, 4096, false)
	w.InsertRows(170, 300)
	w.AdvanceRef()
	r, _ := w.bootstrapped()
	if n := len(w.Image(w.Pub.TXID)) / 4096; n < 10 || n%3 == 0 {
		t.Fatalf("the database has %d pages; want 10 or more, not a multiple of 3", n)
	}
	defer func(c int64) { exportChunk = c }(exportChunk)
	for _, c := range []int64{3 * 4096, 4096 - 1} {
		exportChunk = c
		checkExport(t, w, r, false)
	}
}

// TestExportRefusesChangedFile: a page of the base file changed behind
// walrust's back fails the checksum the replica recorded, and nothing is
// written.
func TestExportRefusesChangedFile(t *testing.T) {
	w := newWorld(t, 4096, false)
	w.InsertRows(20, 300)
	w.AdvanceRef()
	r, _ := w.bootstrapped()
	f, err := os.OpenFile(w.Path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("x"), 2*4096+100); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out := filepath.Join(t.TempDir(), "out.db")
	_, err = r.Export(context.Background(), out)
	if err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("Export of a changed file: %v; want a checksum error", err)
	}
	if _, serr := os.Stat(out); !os.IsNotExist(serr) {
		t.Fatalf("Export left %s behind: %v", out, serr)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*")); len(left) > 0 {
		t.Fatalf("Export left temporary files: %v", left)
	}
}

// TestPromote: Promote leaves the primary's file in the replica's place
// and none of walrust's; a promotion interrupted after its commit point
// (no state file, the promoted file beside) is finished by ResumePromote,
// and one interrupted before it is not taken for one.
func TestPromote(t *testing.T) {
	w := newWorld(t, 4096, true)
	w.InsertRows(10, 300)
	w.AdvanceRef()
	r, f := w.bootstrapped()
	w.InsertRows(3, 300)
	w.commitImage(asWAL(w.Ref.Image()))
	mustStep(t, f)
	want := w.Image(w.Pub.TXID)
	if _, err := r.Export(context.Background(), PromotedPath(w.Path)); err != nil {
		t.Fatal(err)
	}
	if err := r.Promote(); err != nil {
		t.Fatal(err)
	}
	checkPromoted(t, w.Path, want)

	// Interrupted after the commit point.
	w2 := newWorld(t, 4096, true)
	w2.InsertRows(10, 300)
	w2.AdvanceRef()
	r2, _ := w2.bootstrapped()
	if _, err := r2.Export(context.Background(), PromotedPath(w2.Path)); err != nil {
		t.Fatal(err)
	}
	if done, err := ResumePromote(w2.Path); done || err != nil {
		t.Fatalf("ResumePromote before the commit point: %v, %v; want nothing done", done, err)
	}
	if err := os.Remove(statePath(w2.Path)); err != nil {
		t.Fatal(err)
	}
	r2.Close() // the crash: the lock file and the log stay
	if done, err := ResumePromote(w2.Path); !done || err != nil {
		t.Fatalf("ResumePromote after the commit point: %v, %v", done, err)
	}
	checkPromoted(t, w2.Path, w2.Image(w2.Pub.TXID))
}

func checkPromoted(t *testing.T, path string, want []byte) {
	t.Helper()
	if got := ltxtest.ReadImage(t, path); !bytes.Equal(got, want) {
		t.Fatalf("promoted file differs from the primary's: first at byte %d", worldtest.FirstDiff(got, want))
	}
	left, _ := filepath.Glob(path + "-*")
	if len(left) > 0 {
		t.Fatalf("promotion left walrust's files: %v", left)
	}
}

// BenchmarkExport: Export of a 32 MiB replica a chunk at a time against
// one page per read and write (what it did before), side by side.
func BenchmarkExport(b *testing.B) {
	w := newWorld(b, 4096, false)
	w.InsertRows(110000, 300)
	w.AdvanceRef()
	r, _ := w.bootstrapped()
	out := filepath.Join(b.TempDir(), "out.db")
	defer func(c int64) { exportChunk = c }(exportChunk)
	for _, c := range []int64{4096, 1 << 20} {
		b.Run(fmt.Sprintf("chunk=%d", c), func(b *testing.B) {
			exportChunk = c
			b.SetBytes(int64(len(w.Image(w.Pub.TXID))))
			for b.Loop() {
				if _, err := r.Export(context.Background(), out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
