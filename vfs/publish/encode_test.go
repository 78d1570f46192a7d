package publish

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/superfly/ltx"
)

// randomImage is a database image of n random pages with a SQLite header
// that states the page size.
func randomImage(t *testing.T, pageSize, n int, seed uint64) []byte {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, pageSize*n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	copy(b, "SQLite format 3\x00")
	ps := uint16(pageSize)
	if pageSize == 65536 {
		ps = 1
	}
	binary.BigEndian.PutUint16(b[16:], ps)
	return b
}

func imageOf(t *testing.T, b []byte) Image {
	t.Helper()
	img, err := NewImage(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// decodeInto applies an LTX file to db (grown or cut to Commit) and returns
// its header, trailer and page numbers.
func decodeInto(t *testing.T, file []byte, db []byte) ([]byte, ltx.Header, ltx.Trailer, []uint32) {
	t.Helper()
	if err := ltx.NewDecoder(bytes.NewReader(file)).Verify(); err != nil {
		t.Fatalf("verify: %v", err)
	}
	dec := ltx.NewDecoder(bytes.NewReader(file))
	if err := dec.DecodeHeader(); err != nil {
		t.Fatal(err)
	}
	hdr := dec.Header()
	size := int(hdr.Commit) * int(hdr.PageSize)
	if len(db) < size {
		db = append(db, make([]byte, size-len(db))...)
	}
	db = db[:size]
	var pgnos []uint32
	data := make([]byte, hdr.PageSize)
	for {
		var ph ltx.PageHeader
		if err := dec.DecodePage(&ph, data); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		copy(db[int(ph.Pgno-1)*int(hdr.PageSize):], data)
		pgnos = append(pgnos, ph.Pgno)
	}
	if err := dec.Close(); err != nil {
		t.Fatal(err)
	}
	return db, hdr, dec.Trailer(), pgnos
}

func checksumOf(t *testing.T, b []byte, pageSize int) ltx.Checksum {
	t.Helper()
	sum, err := ltx.ChecksumReader(bytes.NewReader(b), pageSize)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func TestWriteSnapshot(t *testing.T) {
	for _, ps := range []int{512, 4096, 65536} {
		b := randomImage(t, ps, 40, uint64(ps))
		var buf bytes.Buffer
		ts := time.UnixMilli(1_700_000_000_123)
		stats, err := WriteSnapshot(&buf, imageOf(t, b), 7, ts, nil)
		if err != nil {
			t.Fatal(err)
		}
		if stats.Size != int64(buf.Len()) || stats.Pages != 40 || stats.Name() != "0000000000000001-0000000000000007.ltx" {
			t.Fatalf("page size %d: stats %+v, %d bytes written", ps, stats, buf.Len())
		}
		got, hdr, trailer, _ := decodeInto(t, buf.Bytes(), nil)
		if !bytes.Equal(got, b) {
			t.Fatalf("page size %d: decoded snapshot differs", ps)
		}
		want := checksumOf(t, b, ps)
		if trailer.PostApplyChecksum != want || stats.PostApplyChecksum != want {
			t.Fatalf("checksum %s / %s, want %s", trailer.PostApplyChecksum, stats.PostApplyChecksum, want)
		}
		if hdr.PageSize != uint32(ps) || hdr.Commit != 40 || hdr.Timestamp != ts.UnixMilli() || hdr.MinTXID != 1 || hdr.MaxTXID != 7 || hdr.Flags != 0 {
			t.Fatalf("header %+v", hdr)
		}
	}
}

func TestWriteDelta(t *testing.T) {
	const ps = 4096
	base := randomImage(t, ps, 20, 1)
	changed := bytes.Clone(base)
	copy(changed[3*ps+100:], "changed") // page 4
	copy(changed[17*ps+9:], "changed")  // page 18
	grown := append(bytes.Clone(changed), randomImage(t, ps, 5, 2)...)
	binary.BigEndian.PutUint16(grown[16:], ps)
	shrunk := bytes.Clone(changed[:12*ps])
	copy(shrunk[ps+1:], "shrunk") // page 2

	for _, tc := range []struct {
		name       string
		cur        []byte
		wantPgnos  []uint32
		wantCommit uint32
	}{
		{"same size", changed, []uint32{4, 18}, 20},
		{"grow", grown, []uint32{4, 18, 21, 22, 23, 24, 25}, 25},
		{"shrink", shrunk, []uint32{2, 4}, 12},
		{"no change", base, nil, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pre := ltx.Pos{TXID: 9, PostApplyChecksum: checksumOf(t, base, ps)}
			var buf bytes.Buffer
			stats, err := WriteDelta(&buf, imageOf(t, base), imageOf(t, tc.cur), pre, 10, time.Now(), nil)
			if err != nil {
				t.Fatal(err)
			}
			got, hdr, trailer, pgnos := decodeInto(t, buf.Bytes(), bytes.Clone(base))
			if !bytes.Equal(got, tc.cur) {
				t.Fatal("base + delta differs from the new image")
			}
			if !slicesEqual(pgnos, tc.wantPgnos) || stats.Pages != len(tc.wantPgnos) {
				t.Fatalf("pages %v (stats %d), want %v", pgnos, stats.Pages, tc.wantPgnos)
			}
			if hdr.Commit != tc.wantCommit || hdr.MinTXID != 10 || hdr.MaxTXID != 10 || hdr.PreApplyChecksum != pre.PostApplyChecksum {
				t.Fatalf("header %+v", hdr)
			}
			if want := checksumOf(t, tc.cur, ps); trailer.PostApplyChecksum != want || stats.PostApplyChecksum != want {
				t.Fatalf("post-apply checksum %s, want %s", trailer.PostApplyChecksum, want)
			}
		})
	}
}

func slicesEqual(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A delta may stand for several TXIDs, as a compaction does.
func TestWriteDeltaRange(t *testing.T) {
	a, b := randomImage(t, 1024, 8, 1), randomImage(t, 1024, 8, 2)
	var buf bytes.Buffer
	pre := ltx.Pos{TXID: 4, PostApplyChecksum: checksumOf(t, a, 1024)}
	stats, err := WriteDelta(&buf, imageOf(t, a), imageOf(t, b), pre, 9, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Name() != "0000000000000005-0000000000000009.ltx" {
		t.Fatalf("name %s", stats.Name())
	}
	decodeInto(t, buf.Bytes(), bytes.Clone(a))
}

// NoChecksum writes files the way Litestream does.
func TestNoChecksum(t *testing.T) {
	a, b := randomImage(t, 1024, 8, 1), randomImage(t, 1024, 8, 2)
	opts := &EncodeOptions{NoChecksum: true}
	var snap, delta bytes.Buffer
	if _, err := WriteSnapshot(&snap, imageOf(t, a), 1, time.Now(), opts); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteDelta(&delta, imageOf(t, a), imageOf(t, b), ltx.Pos{TXID: 1}, 2, time.Now(), opts); err != nil {
		t.Fatal(err)
	}
	for _, f := range [][]byte{snap.Bytes(), delta.Bytes()} {
		_, hdr, trailer, _ := decodeInto(t, f, bytes.Clone(a))
		if !hdr.NoChecksum() || hdr.PreApplyChecksum != 0 || trailer.PostApplyChecksum != 0 {
			t.Fatalf("header %+v trailer %+v", hdr, trailer)
		}
	}
}

func TestWriteDeltaRefuses(t *testing.T) {
	a, b := randomImage(t, 1024, 8, 1), randomImage(t, 2048, 4, 2)
	pre := ltx.Pos{TXID: 1, PostApplyChecksum: checksumOf(t, a, 1024)}
	if _, err := WriteDelta(io.Discard, imageOf(t, a), imageOf(t, b), pre, 2, time.Now(), nil); !errors.Is(err, ErrPageSizeChanged) {
		t.Fatalf("page size change: %v", err)
	}
	if _, err := WriteDelta(io.Discard, imageOf(t, a), imageOf(t, a), ltx.Pos{}, 1, time.Now(), nil); err == nil {
		t.Fatal("delta from TXID 0 accepted")
	}
	if _, err := WriteDelta(io.Discard, imageOf(t, a), imageOf(t, a), pre, 1, time.Now(), nil); err == nil {
		t.Fatal("delta to an older TXID accepted")
	}
	if _, err := WriteDelta(io.Discard, imageOf(t, a), imageOf(t, a), ltx.Pos{TXID: 1}, 2, time.Now(), nil); err == nil {
		t.Fatal("delta without a pre-apply checksum accepted")
	}
	if _, err := NewImage(bytes.NewReader(a[:1000]), 1000); err == nil {
		t.Fatal("image of a partial page accepted")
	}
}

// syntheticImage makes up a large image without storing it: each page
// holds its number and a version stamp, then zeros.
type syntheticImage struct {
	pageSize int64
	pages    int64
	version  map[int64]byte // pgno -> stamp; others 0
}

func (s *syntheticImage) ReadAt(p []byte, off int64) (int, error) {
	clear(p)
	for i := int64(0); i < int64(len(p)); {
		pos := off + i
		pgno := pos/s.pageSize + 1
		if pgno > s.pages {
			return int(i), io.EOF
		}
		var page [16]byte
		if pgno == 1 {
			copy(page[:], "SQLite format 3\x00")
		} else {
			binary.BigEndian.PutUint64(page[:], uint64(pgno))
			page[8] = s.version[pgno]
		}
		inPage := pos % s.pageSize
		n := min(s.pageSize-inPage, int64(len(p))-i)
		if inPage < 16 {
			copy(p[i:i+n], page[inPage:])
		}
		if pgno == 1 && inPage <= 17 && inPage+n > 17 {
			p[i+16-inPage], p[i+17-inPage] = 0, 1 // page size 65536
		}
		i += n
	}
	return len(p), nil
}

// A database past 1 GiB has a lock page, which LTX files never hold and
// checksums leave out; memory stays flat while 1 GiB is scanned.
func TestLockPage(t *testing.T) {
	if testing.Short() || raceEnabled {
		// One goroutine scans 3 GiB: ~6 s, ~100 s under the race detector,
		// which has nothing to find here.
		t.Skip("scans 3 GiB; skipped with -short and -race")
	}
	const ps = 65536
	lock := int64(ltx.LockPgno(ps))
	prev := &syntheticImage{pageSize: ps, pages: lock + 2, version: map[int64]byte{}}
	cur := &syntheticImage{pageSize: ps, pages: lock + 3, version: map[int64]byte{2: 1, lock - 1: 1, lock + 1: 1}}
	prevImg := Image{R: prev, PageSize: ps, Commit: uint32(prev.pages)}
	curImg := Image{R: cur, PageSize: ps, Commit: uint32(cur.pages)}
	dir := t.TempDir()
	opts := &EncodeOptions{SpillDir: dir}

	snapPath := filepath.Join(dir, "snap.ltx")
	f, err := os.Create(snapPath)
	if err != nil {
		t.Fatal(err)
	}
	stats, err := WriteSnapshot(f, prevImg, 1, time.Now(), opts)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if stats.Pages != int(prev.pages-1) {
		t.Fatalf("snapshot holds %d pages, want %d (all but the lock page)", stats.Pages, prev.pages-1)
	}
	f, err = os.Open(snapPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := ltx.NewDecoder(f)
	if err := dec.Verify(); err != nil {
		t.Fatal(err)
	}
	// The decoder checked the snapshot's checksum against its pages.
	want := stats.PostApplyChecksum
	if dec.Trailer().PostApplyChecksum != want {
		t.Fatalf("snapshot checksum %s, stats say %s", dec.Trailer().PostApplyChecksum, want)
	}

	var buf bytes.Buffer
	stats, err = WriteDelta(&buf, prevImg, curImg, ltx.Pos{TXID: 1, PostApplyChecksum: want}, 2, time.Now(), opts)
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, pgnos := decodeInto(t, buf.Bytes(), nil)
	wantPgnos := []uint32{2, uint32(lock - 1), uint32(lock + 1), uint32(lock + 3)}
	if !slicesEqual(pgnos, wantPgnos) {
		t.Fatalf("delta pages %v, want %v", pgnos, wantPgnos)
	}
	// The checksum moves by the pages that changed, and only by them.
	page := make([]byte, ps)
	for _, pgno := range wantPgnos {
		if int64(pgno) <= prev.pages {
			prev.ReadAt(page, (int64(pgno)-1)*ps)
			want ^= ltx.ChecksumPage(pgno, page)
		}
		cur.ReadAt(page, (int64(pgno)-1)*ps)
		want ^= ltx.ChecksumPage(pgno, page)
	}
	if want |= ltx.ChecksumFlag; stats.PostApplyChecksum != want {
		t.Fatalf("delta checksum %s, want %s", stats.PostApplyChecksum, want)
	}
}
