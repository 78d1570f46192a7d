// Package ltxtest builds LTX streams for tests: a Primary holds a database
// image and turns each new image into the LTX file a producer would write.
package ltxtest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"os"
	"testing"
	"time"

	"github.com/pierrec/lz4/v4"
	"github.com/superfly/ltx"
	"github.com/walrust/walrust/vfs/store"
)

// Primary is the producer side of a test: the last image it published, its
// TXID and checksum, and the store it writes to.
type Primary struct {
	Store      store.Store
	PageSize   uint32
	Image      []byte // the database as of TXID
	TXID       ltx.TXID
	Checksum   ltx.Checksum
	NoChecksum bool // write files the way Litestream does (no database checksums)
	Level      int  // level for incremental files (default 0)
}

// Checksum is the LTX rolling checksum of a database image.
func Checksum(image []byte, pageSize uint32) ltx.Checksum {
	var sum ltx.Checksum
	lock := ltx.LockPgno(pageSize)
	for pgno := uint32(1); int64(pgno)*int64(pageSize) <= int64(len(image)); pgno++ {
		if pgno != lock {
			sum = ltx.ChecksumFlag | (sum ^ ltx.ChecksumPage(pgno, page(image, pageSize, pgno)))
		}
	}
	return sum
}

func page(image []byte, pageSize, pgno uint32) []byte {
	off := int64(pgno-1) * int64(pageSize)
	return image[off : off+int64(pageSize)]
}

// Encode writes an LTX file that takes prev (at minTXID-1) to cur. With
// minTXID 1 it is a snapshot of cur; otherwise it holds the pages that
// differ, plus every page beyond prev's end.
func Encode(t testing.TB, prev, cur []byte, pageSize uint32, minTXID, maxTXID ltx.TXID, preChecksum ltx.Checksum, noChecksum bool, ts time.Time) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc, err := ltx.NewEncoder(&buf)
	if err != nil {
		t.Fatal(err)
	}
	commit := uint32(len(cur) / int(pageSize))
	hdr := ltx.Header{
		Version: ltx.Version, PageSize: pageSize, Commit: commit,
		MinTXID: minTXID, MaxTXID: maxTXID, Timestamp: ts.UnixMilli(),
	}
	if noChecksum {
		hdr.Flags = ltx.HeaderFlagNoChecksum
	} else if minTXID > 1 {
		hdr.PreApplyChecksum = preChecksum
	}
	if err := enc.EncodeHeader(hdr); err != nil {
		t.Fatal(err)
	}
	lock := ltx.LockPgno(pageSize)
	for pgno := uint32(1); pgno <= commit; pgno++ {
		if pgno == lock {
			continue
		}
		p := page(cur, pageSize, pgno)
		if minTXID > 1 && int64(pgno)*int64(pageSize) <= int64(len(prev)) && bytes.Equal(p, page(prev, pageSize, pgno)) {
			continue
		}
		if err := enc.EncodePage(ltx.PageHeader{Pgno: pgno}, p); err != nil {
			t.Fatal(err)
		}
	}
	if !noChecksum {
		enc.SetPostApplyChecksum(Checksum(cur, pageSize))
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Put stores an LTX file under the name its header gives.
func Put(t testing.TB, st store.Store, level int, data []byte) store.FileInfo {
	t.Helper()
	hdr, _, err := ltx.DecodeHeader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	fi := store.FileInfo{Level: level, MinTXID: hdr.MinTXID, MaxTXID: hdr.MaxTXID}
	if err := st.Put(context.Background(), fi, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	return fi
}

// Snapshot publishes the current image as a level-9 snapshot at TXID.
func (p *Primary) Snapshot(t testing.TB) store.FileInfo {
	t.Helper()
	data := Encode(t, nil, p.Image, p.PageSize, 1, p.TXID, 0, p.NoChecksum, time.Now())
	return Put(t, p.Store, store.SnapshotLevel, data)
}

// Commit publishes img as the next TXID and makes it the current image.
func (p *Primary) Commit(t testing.TB, img []byte) store.FileInfo {
	t.Helper()
	data := Encode(t, p.Image, img, p.PageSize, p.TXID+1, p.TXID+1, p.Checksum, p.NoChecksum, time.Now())
	fi := Put(t, p.Store, p.Level, data)
	p.Advance(img, p.TXID+1)
	return fi
}

// Advance records img as the image at txid without publishing anything.
func (p *Primary) Advance(img []byte, txid ltx.TXID) {
	p.Image = append([]byte(nil), img...)
	p.TXID = txid
	p.Checksum = Checksum(img, p.PageSize)
}

// ReadImage reads a database file that is not in WAL mode (so the file
// alone holds the committed state).
func ReadImage(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// DecodeInto writes the pages of an LTX file, whose header dec has decoded,
// into a database file at their offsets, verifies the file (its checksum is
// checked at Close) and sizes out to the file's commit: a test-only applier.
func DecodeInto(t testing.TB, dec *ltx.Decoder, out *os.File) {
	t.Helper()
	hdr := dec.Header()
	name := ltx.FormatFilename(hdr.MinTXID, hdr.MaxTXID)
	data := make([]byte, hdr.PageSize)
	for {
		var ph ltx.PageHeader
		if err := dec.DecodePage(&ph, data); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := out.WriteAt(data, int64(ph.Pgno-1)*int64(hdr.PageSize)); err != nil {
			t.Fatal(err)
		}
	}
	if err := dec.Close(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if err := out.Truncate(int64(hdr.Commit) * int64(hdr.PageSize)); err != nil {
		t.Fatal(err)
	}
}

// CraftPage is one page frame of a crafted file.
type CraftPage struct {
	Pgno uint32
	Data []byte // any length; compressed as LZ4 blocks, as ltx writes pages
	// Size, if set, is written as the frame's compressed size in place of
	// the real one.
	Size *uint32
	// Frame writes the page as an LZ4 frame with no size field, as ltx
	// before v0.5.2 did.
	Frame bool
}

// Craft writes an LTX file with any header and pages, bypassing every check
// of the ltx encoder (TXIDs, commit, page order, page sizes), with a correct
// file checksum: what a hostile store, or a buggy producer, can serve.
func Craft(hdr ltx.Header, pages []CraftPage, postApply ltx.Checksum) []byte {
	var out bytes.Buffer
	h := crc64.New(crc64.MakeTable(crc64.ISO))
	hashed := func(b []byte) {
		out.Write(b)
		h.Write(b)
	}
	hb, _ := hdr.MarshalBinary()
	hashed(hb)
	var index []byte
	for _, p := range pages {
		off := out.Len()
		if p.Frame {
			ph, _ := (&ltx.PageHeader{Pgno: p.Pgno}).MarshalBinary()
			hashed(ph)
			zw := lz4.NewWriter(&out)
			if _, err := zw.Write(p.Data); err != nil {
				panic(err)
			}
			if err := zw.Close(); err != nil {
				panic(err)
			}
			h.Write(p.Data)
			index = binary.AppendUvarint(index, uint64(p.Pgno))
			index = binary.AppendUvarint(index, uint64(off))
			index = binary.AppendUvarint(index, uint64(out.Len()-off))
			continue
		}
		ph, _ := (&ltx.PageHeader{Pgno: p.Pgno, Flags: ltx.PageHeaderFlagSize}).MarshalBinary()
		hashed(ph)
		comp := make([]byte, lz4.CompressBlockBound(len(p.Data))+1)
		var c lz4.Compressor
		n, err := c.CompressBlock(p.Data, comp)
		if err != nil || n == 0 {
			panic(fmt.Sprintf("craft: compress page %d: n=%d %v", p.Pgno, n, err))
		}
		size := uint32(n)
		if p.Size != nil {
			size = *p.Size
		}
		hashed(binary.BigEndian.AppendUint32(nil, size))
		out.Write(comp[:n])
		h.Write(p.Data) // the file checksum covers the uncompressed page
		index = binary.AppendUvarint(index, uint64(p.Pgno))
		index = binary.AppendUvarint(index, uint64(off))
		index = binary.AppendUvarint(index, uint64(out.Len()-off))
	}
	hashed(make([]byte, ltx.PageHeaderSize)) // the end of the pages
	index = binary.AppendUvarint(index, 0)
	hashed(index)
	hashed(binary.BigEndian.AppendUint64(nil, uint64(len(index))))
	tr := binary.BigEndian.AppendUint64(nil, uint64(postApply))
	hashed(tr)
	out.Write(binary.BigEndian.AppendUint64(nil, uint64(ltx.ChecksumFlag|ltx.Checksum(h.Sum64()))))
	return out.Bytes()
}
