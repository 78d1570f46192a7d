package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/store"
)

// publishGapEdits puts n LTX files at level 0 of the file store at root,
// TXIDs 2..n+1, each rewriting one random b-tree page of db with a byte
// changed in the page's unallocated gap (between the cell pointers and the
// cell content), which SQLite never reads: every version holds the same
// rows. It returns the last TXID.
func publishGapEdits(t testing.TB, db *testDB, root string, n int) ltx.TXID {
	t.Helper()
	st, err := store.OpenFile(root)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(db.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const ps = 4096
	rng := rand.New(rand.NewPCG(7, 7))
	page := make([]byte, ps)
	txid := ltx.TXID(1)
	for i := 0; i < n; {
		pgno := 2 + uint32(rng.Int64N(int64(db.pages-1)))
		if pgno == ltx.LockPgno(ps) {
			continue
		}
		if _, err := f.ReadAt(page, int64(pgno-1)*ps); err != nil {
			t.Fatal(err)
		}
		hsize := 8
		switch page[0] {
		case 0x0d, 0x0a: // leaf pages
		case 0x05, 0x02: // interior pages
			hsize = 12
		default:
			continue // an overflow or free page: leave it
		}
		lo := hsize + 2*int(binary.BigEndian.Uint16(page[3:]))
		hi := int(binary.BigEndian.Uint16(page[5:]))
		if hi == 0 {
			hi = 65536
		}
		if hi-lo < 1 {
			continue
		}
		page[lo+rng.IntN(hi-lo)] ^= 0x5a
		txid++
		var buf bytes.Buffer
		enc, err := ltx.NewEncoder(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if err := enc.EncodeHeader(ltx.Header{
			Version: ltx.Version, Flags: ltx.HeaderFlagNoChecksum, PageSize: ps, Commit: db.pages,
			MinTXID: txid, MaxTXID: txid, Timestamp: time.Now().UnixMilli(),
		}); err != nil {
			t.Fatal(err)
		}
		if err := enc.EncodePage(ltx.PageHeader{Pgno: pgno}, page); err != nil {
			t.Fatal(err)
		}
		if err := enc.Close(); err != nil {
			t.Fatal(err)
		}
		fi := store.FileInfo{Level: 0, MinTXID: txid, MaxTXID: txid}
		if err := st.Put(context.Background(), fi, &buf); err != nil {
			t.Fatal(err)
		}
		i++
	}
	return txid
}
