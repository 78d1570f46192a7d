package worldtest

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"testing"

	"github.com/superfly/ltx"
)

// Served is one version of the database as a replica serves it.
type Served interface {
	ReadAt(p []byte, off int64) (int, error)
	Size() int64
}

// Header is what a served version says of itself.
type Header struct {
	TXID     ltx.TXID
	Counter  uint32 // the change counter walrust gives it
	Commit   uint32 // its size in pages
	PageSize uint32
}

// HeaderExempt says whether byte i of page 1 is one walrust patches: the
// file format bytes, the change counter, the size in pages and
// version-valid-for.
func HeaderExempt(i int) bool {
	return i == 18 || i == 19 || (i >= 24 && i < 32) || (i >= 92 && i < 96)
}

// CheckServed compares a version, read page by page through ReadAt, with a
// database image: every byte except those walrust patches, and the size.
// It also checks the patched header itself.
func CheckServed(t testing.TB, v Served, h Header, img []byte, what string) {
	t.Helper()
	ps := int(h.PageSize)
	if v.Size() != int64(len(img)) {
		t.Fatalf("%s: TXID %d serves %d bytes, reference has %d", what, h.TXID, v.Size(), len(img))
	}
	buf := make([]byte, ps)
	for pgno := 1; pgno*ps <= len(img); pgno++ {
		n, err := v.ReadAt(buf, int64(pgno-1)*int64(ps))
		if err != nil || n != ps {
			t.Fatalf("%s: read page %d: n=%d err=%v", what, pgno, n, err)
		}
		want := img[(pgno-1)*ps : pgno*ps]
		if pgno == 1 {
			checkServedHeader(t, v, h, buf, what)
			for i := range want {
				if !HeaderExempt(i) && buf[i] != want[i] {
					t.Fatalf("%s: TXID %d page 1 byte %d = %#x, want %#x", what, h.TXID, i, buf[i], want[i])
				}
			}
			continue
		}
		if !bytes.Equal(buf, want) {
			t.Fatalf("%s: TXID %d page %d differs from the reference (first diff at %d)", what, h.TXID, pgno, FirstDiff(buf, want))
		}
	}
	// A read past the end is a short read that zero-fills.
	for i := range buf {
		buf[i] = 0xAA
	}
	n, err := v.ReadAt(buf, int64(len(img)))
	if n != 0 || err != io.EOF || buf[0] != 0 || buf[ps-1] != 0 {
		t.Fatalf("%s: read past the end: n=%d err=%v, buffer not zeroed", what, n, err)
	}
}

// checkServedHeader checks the served form of page 1: a rollback-journal
// database whose change counter and version-valid-for are the version's
// counter and whose size in pages is the commit.
func checkServedHeader(t testing.TB, v Served, h Header, p1 []byte, what string) {
	t.Helper()
	if p1[18] != 1 || p1[19] != 1 {
		t.Fatalf("%s: file format bytes %d,%d; want 1,1", what, p1[18], p1[19])
	}
	c24, c28, c92 := binary.BigEndian.Uint32(p1[24:]), binary.BigEndian.Uint32(p1[28:]), binary.BigEndian.Uint32(p1[92:])
	if c24 != h.Counter || c92 != h.Counter || c28 != h.Commit {
		t.Fatalf("%s: header counter %d, valid-for %d, size %d; want %d, %d, %d", what, c24, c92, c28, h.Counter, h.Counter, h.Commit)
	}
	// A partial read of the header is patched too.
	part := make([]byte, 8)
	if _, err := v.ReadAt(part, 24); err != nil {
		t.Fatalf("%s: partial header read: %v", what, err)
	}
	if binary.BigEndian.Uint32(part) != h.Counter || binary.BigEndian.Uint32(part[4:]) != h.Commit {
		t.Fatalf("%s: partial header read %x; want counter %d commit %d", what, part, h.Counter, h.Commit)
	}
}

// CheckBaseFile compares the replica's local file itself with img, as a
// plain sqlite3 process would read it: every byte but those walrust
// patches, a rollback-journal header, and counter as its change counter.
func CheckBaseFile(t testing.TB, path string, img []byte, pageSize uint32, counter uint32, what string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(img) {
		t.Fatalf("%s: base file is %d bytes, want %d", what, len(got), len(img))
	}
	for i := range img {
		if i < 100 && HeaderExempt(i) {
			continue
		}
		if got[i] != img[i] {
			t.Fatalf("%s: base file byte %d (page %d) = %#x, want %#x", what, i, i/int(pageSize)+1, got[i], img[i])
		}
	}
	if c := binary.BigEndian.Uint32(got[24:]); c != counter || binary.BigEndian.Uint32(got[92:]) != c {
		t.Fatalf("%s: base file counter %d, state says %d", what, c, counter)
	}
	if got[18] != 1 || got[19] != 1 {
		t.Fatalf("%s: base file is not a rollback-journal database", what)
	}
}

// FirstDiff is the first offset at which a and b differ.
func FirstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
