package ltxguard_test

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/superfly/ltx"
	"github.com/walrust/walrust/vfs/internal/ltxguard"
	"github.com/walrust/walrust/vfs/testkit/ltxtest"
)

const ps = 512

var testTime = time.Unix(1700000000, 0)

func framed(pgnos ...uint32) []ltxtest.CraftPage {
	out := pages(pgnos...)
	for i := range out {
		out[i].Frame = true
	}
	return out
}

func page(b byte) []byte { return bytes.Repeat([]byte{b}, ps) }

func pages(pgnos ...uint32) []ltxtest.CraftPage {
	var out []ltxtest.CraftPage
	for _, p := range pgnos {
		out = append(out, ltxtest.CraftPage{Pgno: p, Data: page(byte(p))})
	}
	return out
}

func header(min, max ltx.TXID, commit uint32) ltx.Header {
	return ltx.Header{Version: ltx.Version, Flags: ltx.HeaderFlagNoChecksum, PageSize: ps, Commit: commit, MinTXID: min, MaxTXID: max, Timestamp: 1}
}

// decode runs the real ltx decoder over the guarded stream, read in small
// pieces so that fields straddle reads, and returns the first error.
func decode(data []byte, want ltxguard.Want) error {
	g := ltxguard.NewReader(iotest.HalfReader(bytes.NewReader(data)), want)
	dec := ltx.NewDecoder(g)
	if err := dec.DecodeHeader(); err != nil {
		return err
	}
	buf := make([]byte, dec.Header().PageSize)
	var ph ltx.PageHeader
	for {
		if err := dec.DecodePage(&ph, buf); err == io.EOF {
			break
		} else if err != nil {
			return err
		}
	}
	return dec.Close()
}

func TestReader(t *testing.T) {
	const max = 1 << 30
	snap := ltxguard.Want{MinTXID: 1, MaxTXID: 5, Snapshot: true, MaxSize: max}
	incr := ltxguard.Want{MinTXID: 6, MaxTXID: 6, MaxSize: max}
	grow := func(from uint32) ltxguard.Want {
		return ltxguard.Want{MinTXID: 6, MaxTXID: 6, MaxSize: max, GrowFrom: from, GrowPageSize: ps}
	}
	huge := uint32(0xFFFFFFFF)
	lockPgno := ltx.LockPgno(ps) // 2^21 + 1 with 512-byte pages
	for _, tc := range []struct {
		name  string
		hdr   ltx.Header
		pages []ltxtest.CraftPage
		want  ltxguard.Want
		err   string // "" for a file that passes
	}{
		{"snapshot", header(1, 5, 3), pages(1, 2, 3), snap, ""},
		{"incremental", header(6, 6, 9), pages(2, 9), incr, ""},
		{"header TXIDs beyond the name", header(6, 100, 9), pages(2), incr, "header says TXIDs 0000000000000006-0000000000000064, its name says 0000000000000006-0000000000000006"},
		{"header TXIDs before the name", header(2, 6, 9), pages(2), incr, "header says TXIDs 0000000000000002-0000000000000006"},
		{"snapshot header with another max", header(1, 9, 3), pages(1, 2, 3), snap, "header says TXIDs 0000000000000001-0000000000000009"},
		{"snapshot level, TXIDs not from 1", header(2, 5, 3), pages(1, 2, 3), ltxguard.Want{MinTXID: 2, MaxTXID: 5, Snapshot: true, MaxSize: max}, "listed as a snapshot, but its TXIDs start at 0000000000000002"},
		{"compaction from TXID 1", header(1, 5, 3), pages(1, 2, 3), ltxguard.Want{MinTXID: 1, MaxTXID: 5, MaxSize: max}, ""},
		{"compaction from TXID 1 with a hole", header(1, 5, 3), pages(1, 3), ltxguard.Want{MinTXID: 1, MaxTXID: 5, MaxSize: max}, "snapshot skips from page 1 to page 3"},
		{"snapshot missing a middle page", header(1, 5, 3), pages(1, 3), snap, "snapshot skips from page 1 to page 3"},
		{"snapshot not starting at page 1", header(1, 5, 3), pages(2, 3), snap, "snapshot skips from page 0 to page 2"},
		{"snapshot short of its commit", header(1, 5, 4), pages(1, 2, 3), snap, "snapshot ends at page 3, before its commit 4"},
		{"page beyond commit", header(6, 6, 9), pages(2, 10), incr, "page 10 beyond commit 9"},
		{"pages out of order", header(6, 6, 9), pages(3, 2), incr, "page 2 after page 3"},
		{"lock page", header(6, 6, lockPgno+1), pages(lockPgno), ltxguard.Want{MinTXID: 6, MaxTXID: 6, MaxSize: 1 << 40}, "is the lock page"},
		{"commit beyond the maximum size", header(6, 6, 1<<31), pages(2), incr, "exceeds the maximum size"},
		{"commit of 2^32-1", header(6, 6, 0xFFFFFFFF), pages(2), ltxguard.Want{MinTXID: 6, MaxTXID: 6, MaxSize: 1 << 40}, "exceeds the maximum size"},
		{"growth with every new page", header(6, 6, 9), pages(2, 5, 6, 7, 8, 9), grow(4), ""},
		{"growth without a new page", header(6, 6, 9), pages(2, 5, 6, 8, 9), grow(4), "grows from 4 to 9 pages, but the file skips from page 6 to page 8"},
		{"growth that stops short", header(6, 6, 9), pages(2, 5, 6), grow(4), "grows from 4 to 9 pages, but the file ends at page 6"},
		{"growth with no new page at all", header(6, 6, 9), pages(2), grow(4), "grows from 4 to 9 pages, but the file ends at page 4"},
		{"growth of another page size", header(6, 6, 9), pages(2), ltxguard.Want{MinTXID: 6, MaxTXID: 6, MaxSize: max, GrowFrom: 4, GrowPageSize: 1024}, ""},
		{"shrink", header(6, 6, 3), pages(2), grow(4), ""},
		{"snapshot claiming more than its bytes", header(1, 5, 1<<20), pages(1), ltxguard.Want{MinTXID: 1, MaxTXID: 5, Snapshot: true, MaxSize: max, Size: 400}, "a file of 400 bytes cannot hold the 1048576 pages"},
		{"growth claiming more than its bytes", header(6, 6, 1<<20), pages(2), ltxguard.Want{MinTXID: 6, MaxTXID: 6, MaxSize: max, GrowFrom: 4, GrowPageSize: ps, Size: 400}, "a file of 400 bytes cannot hold"},
		{"old LZ4 frames", header(6, 6, 9), framed(2, 3, 9), incr, ""},
		{"old LZ4 frames, then a page beyond commit", header(6, 6, 9), framed(2, 3, 10), incr, "page 10 beyond commit 9"},
		{"frame of 4 GiB", header(6, 6, 9), []ltxtest.CraftPage{{Pgno: 2, Data: page(2), Size: &huge}}, incr, "compressed size 4294967295"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := ltxtest.Craft(tc.hdr, tc.pages, 0)
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			err := decode(data, tc.want)
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			// Old LZ4 frames take a 4 MiB block buffer each from a
			// sync.Pool, which the race detector empties at random: up to
			// 12 MiB for the three frames here, and more when other
			// tests allocate meanwhile. A crafted size would ask for GiBs.
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 48<<20 {
				t.Errorf("decoding allocated %d MiB", grew>>20)
			}
			if tc.err == "" {
				if err != nil {
					t.Fatalf("a good file fails: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ltxguard.ErrInvalid) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v; want ErrInvalid with %q", err, tc.err)
			}
		})
	}
}

// The guard passes what ltx's own encoder writes, byte for byte.
func TestReaderPassesEncoderOutput(t *testing.T) {
	img := bytes.Repeat([]byte("walrust!"), 64*ps/8)
	data := ltxtest.Encode(t, nil, img, ps, 1, 7, 0, false, testTime)
	g := ltxguard.NewReader(bytes.NewReader(data), ltxguard.Want{MinTXID: 1, MaxTXID: 7, Snapshot: true, MaxSize: 1 << 20})
	got, err := io.ReadAll(g)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("passed %d of %d bytes: %v", len(got), len(data), err)
	}
}
