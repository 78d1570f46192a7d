package ltxguard_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/superfly/ltx"
	"github.com/walrust/walrust/vfs/internal/ltxguard"
	"github.com/walrust/walrust/vfs/testkit/ltxtest"
)

// FuzzDecode feeds the real decoder any bytes through the guard, under the
// name the bytes' own header gives (so that the fuzzer gets past the name
// check) or another. Whatever the bytes, nothing may panic or allocate by
// a size the file states; whatever passes must honour the guard's rules.
func FuzzDecode(f *testing.F) {
	f.Add(ltxtest.Craft(header(1, 5, 3), pages(1, 2, 3), 0), true, false)
	f.Add(ltxtest.Craft(header(6, 6, 9), pages(2, 9), 0), false, false)
	f.Add(ltxtest.Craft(header(6, 6, 9), framed(2, 3, 9), 0), false, false)
	f.Add(ltxtest.Encode(f, nil, bytes.Repeat([]byte("walrust!"), 8*ps/8), ps, 1, 7, 0, false, testTime), true, false)
	f.Fuzz(func(t *testing.T, data []byte, snapshot, otherName bool) {
		want := ltxguard.Want{MinTXID: 1, MaxTXID: 1, Snapshot: snapshot, MaxSize: 1 << 24}
		if len(data) >= 32 && !otherName {
			want.MinTXID = ltx.TXID(binary.BigEndian.Uint64(data[16:]))
			want.MaxTXID = ltx.TXID(binary.BigEndian.Uint64(data[24:]))
		}
		g := ltxguard.NewReader(bytes.NewReader(data), want)
		dec := ltx.NewDecoder(g)
		if err := dec.DecodeHeader(); err != nil {
			return
		}
		hdr := dec.Header()
		if hdr.MinTXID != want.MinTXID || hdr.MaxTXID != want.MaxTXID || int64(hdr.Commit)*int64(hdr.PageSize) > want.MaxSize {
			if err := drain(dec); err == nil {
				t.Fatalf("a file with header %+v passed as %+v", hdr, want)
			}
			return
		}
		buf := make([]byte, hdr.PageSize)
		var ph ltx.PageHeader
		var got []uint32
		for {
			if err := dec.DecodePage(&ph, buf); err == io.EOF {
				break
			} else if err != nil {
				return
			}
			got = append(got, ph.Pgno)
		}
		if dec.Close() != nil {
			return
		}
		// A file that passes: its pages ascend within the commit, and a
		// snapshot's are every page but the lock page.
		lock := ltx.LockPgno(hdr.PageSize)
		next := uint32(1)
		for i, pgno := range got {
			if pgno > hdr.Commit || (i > 0 && pgno <= got[i-1]) || pgno == lock {
				t.Fatalf("passed page %d (commit %d) after %v", pgno, hdr.Commit, got[:i])
			}
			if hdr.IsSnapshot() {
				if next == lock {
					next++
				}
				if pgno != next {
					t.Fatalf("passed a snapshot with page %d where page %d belongs", pgno, next)
				}
				next++
			}
		}
		if snapshot && !hdr.IsSnapshot() {
			t.Fatalf("passed a file from TXID %d as a snapshot", hdr.MinTXID)
		}
	})
}

func drain(dec *ltx.Decoder) error {
	buf := make([]byte, dec.Header().PageSize)
	var ph ltx.PageHeader
	for {
		if err := dec.DecodePage(&ph, buf); errors.Is(err, io.EOF) {
			return dec.Close()
		} else if err != nil {
			return err
		}
	}
}
