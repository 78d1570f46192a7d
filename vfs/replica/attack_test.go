package replica

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/pierrec/lz4/v4"
	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/internal/crc64iso"
	"github.com/walrust/walrust/vfs/internal/ltxguard"
)

// resum recomputes the file checksum of an LTX file of LZ4 blocks (the
// last 8 bytes): CRC-64 ISO over the header, each frame's page header and
// size field with its page decompressed, the end marker, the index, its
// size field and the trailer's first 8 bytes. A hostile store computes it
// as easily: the checksum proves integrity, not authorship.
func resum(t *testing.T, data []byte) []byte {
	t.Helper()
	var hdr ltx.Header
	if err := hdr.UnmarshalBinary(data[:ltx.HeaderSize]); err != nil {
		t.Fatal(err)
	}
	h := crc64iso.New()
	h.Write(data[:ltx.HeaderSize])
	page := make([]byte, hdr.PageSize)
	pos := ltx.HeaderSize
	for {
		ph := data[pos : pos+ltx.PageHeaderSize]
		if bytes.Equal(ph, make([]byte, ltx.PageHeaderSize)) {
			break
		}
		n := int(binary.BigEndian.Uint32(data[pos+ltx.PageHeaderSize:]))
		h.Write(data[pos : pos+ltx.PageHeaderSize+4])
		blk := data[pos+ltx.PageHeaderSize+4 : pos+ltx.PageHeaderSize+4+n]
		if _, err := lz4.UncompressBlock(blk, page); err != nil {
			t.Fatal(err)
		}
		h.Write(page)
		pos += ltx.PageHeaderSize + 4 + n
	}
	h.Write(data[pos : len(data)-ltx.ChecksumSize])
	out := bytes.Clone(data)
	binary.BigEndian.PutUint64(out[len(out)-ltx.ChecksumSize:], uint64(ltx.ChecksumFlag|ltx.Checksum(h.Sum64())))
	return out
}

// overflowFirstPgno rewrites the page index's first record so that its
// page number (1, one byte) takes ten bytes whose last one overflows 64
// bits (0x02 << 63 is lost): a uvarint encoding/binary and the ltx
// decoder refuse ("uvarint overflows 64 bits"). The index size field and
// the file checksum are fixed up, so nothing else is wrong.
func overflowFirstPgno(t *testing.T, good []byte) []byte {
	t.Helper()
	size := len(good)
	n := int(binary.BigEndian.Uint64(good[size-tailSize:]))
	off := size - tailSize - n
	if good[off] != 1 {
		t.Fatalf("first index record starts with %#x, not page 1", good[off])
	}
	long := []byte{0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02}
	if _, err := binary.ReadUvarint(bytes.NewReader(long)); err == nil {
		t.Fatal("the encoding is meant to overflow")
	}
	var b []byte
	b = append(b, good[:off]...)
	b = append(b, long...)
	b = append(b, good[off+1:size-tailSize]...)
	b = binary.BigEndian.AppendUint64(b, uint64(n+len(long)-1))
	b = append(b, good[size-ltx.TrailerSize:]...)
	return resum(t, b)
}

// TestBlockReaderVarintOverflow: the block reader's index varints accept
// a 10-byte encoding whose last byte overflows 64 bits; the ltx decoder it
// replaces (readUvarintInto) refuses the same file. FuzzBlockReader's
// property ("whatever it accepts the ltx decoder accepts") is broken by
// it; the fuzzer is unlikely to find a 10-byte varint on its own.
func TestBlockReaderVarintOverflow(t *testing.T) {
	good, want := literalSnapshot(t)
	read := func(data []byte) error {
		err := readBlocks(data, want)
		if errors.Is(err, errNotBlocks) {
			t.Fatal(err)
		}
		return err
	}
	if err := read(resum(t, good)); err != nil {
		t.Fatalf("the good snapshot, checksummed by resum: %v", err)
	}
	bad := overflowFirstPgno(t, good)
	dec := newDecoder(bytes.NewReader(bad), want)
	if err := dec.DecodeHeader(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := decodeAll(ltxSource{dec}); err == nil {
		t.Fatal("the ltx decoder accepts the overflowing varint too: nothing to hold the block reader to")
	} else {
		t.Logf("ltx decoder: %v", err)
	}
	if err := read(bad); err == nil {
		t.Fatal("the block reader accepts a page index varint that overflows 64 bits, which the ltx decoder refuses")
	}
}

// TestLazyIndexVarintOverflow: a lazy bootstrap's parseIndex accepts the
// same overflowing varint.
func TestLazyIndexVarintOverflow(t *testing.T) {
	good := lazySnapshotBytes(t)
	if err := beginFrom(t, resum(t, good)); err != nil {
		t.Fatalf("the good snapshot: %v", err)
	}
	if err := beginFrom(t, overflowFirstPgno(t, good)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %v, want a corrupt snapshot (a page index varint that overflows 64 bits)", err)
	}
}

// TestLazyIndexAllocatesByClaim: a lazy bootstrap sizes its frame offsets
// (8 bytes a page) by the header's commit before it has read a single
// byte of the page index. The store lists a file large enough for the
// guard's and indexBounds' arithmetic (12 bytes a page of 512), serves a
// header and a 256 KiB tail, and then nothing: memory of 8 bytes × commit
// is allocated all the same. At the default maximum size (1 TiB) that is
// 2^31 pages, 16 GiB, for a listing of ~26 GB of which 256 KiB were ever
// sent: the Go runtime's "out of memory" is fatal, and takes the process
// that loaded the extension with it. Here: 8M pages, 64 MiB.
func TestLazyIndexAllocatesByClaim(t *testing.T) {
	const ps = 512
	const commit = 8 << 20
	hdr := ltx.Header{Version: ltx.Version, Flags: ltx.HeaderFlagNoChecksum, PageSize: ps, Commit: commit, MinTXID: 1, MaxTXID: 1, Timestamp: fuzzTime.UnixMilli()}
	head, err := hdr.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	head = append(head, 0, 0, 0, 1, 0, byte(ltx.PageHeaderFlagSize)) // page 1's frame header
	pages := int64(commit - 1)                                       // the lock page has no frame
	size := pages*(ltx.PageHeaderSize+4+ps/256) + 4096
	indexN := 3*pages + 1 // the least indexBounds takes
	indexOff := size - tailSize - indexN
	var served atomic.Int64 // the header and the tail are fetched in parallel
	fetch := func(ctx context.Context, off, n int64) (io.ReadCloser, error) {
		if off < 0 || n <= 0 || off+n > size {
			return nil, errors.New("range out of the file")
		}
		b := make([]byte, 0, min(n, tailGuess))
		switch {
		case off == 0:
			b = append(b, head[:n]...)
		case off+n == size && n <= tailGuess: // the tail: only its index size field matters
			b = make([]byte, n)
			binary.BigEndian.PutUint64(b[n-tailSize:], uint64(indexN))
		case off == indexOff: // the index itself: the store sends nothing
		default:
			t.Errorf("unexpected range [%d, +%d)", off, n)
		}
		served.Add(int64(len(b)))
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	w := newWorld(t, 4096, false)
	r := w.openReplica()
	t.Cleanup(func() { r.Close() })
	want := ltxguard.Want{MinTXID: 1, MaxTXID: 1, Size: size}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err = r.BeginHydration(LazySnapshot{Want: want, Fetch: fetch, Ctx: context.Background()})
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("began a lazy bootstrap without a page index")
	}
	alloc := int64(after.TotalAlloc - before.TotalAlloc)
	sent := served.Load()
	t.Logf("served %d bytes, allocated %d bytes, for a header that claims %d pages", sent, alloc, commit)
	if alloc > 8*sent+(4<<20) {
		t.Fatalf("allocated %d MiB for a snapshot that sent %d KiB: memory sized by the header's claim, not by the index read", alloc>>20, sent>>10)
	}
}

// brokenAfter reads n bytes of r, then fails as a network does.
type brokenAfter struct {
	r io.Reader
	n int
}

var errReset = errors.New("read tcp: connection reset by peer")

func (b *brokenAfter) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, errReset
	}
	p = p[:min(len(p), b.n)]
	n, err := b.r.Read(p)
	b.n -= n
	return n, err
}

// TestLazyIndexReadErrorNotCorrupt: when a lazy bootstrap reads a page
// index too large for its first GET of the tail, a read error of the
// store in the middle of the second GET (a reset connection, the range's
// time budget running out) is taken for proof that the snapshot is
// corrupt (parseIndex wraps every error of its reader in corrupt): the
// follower rejects the snapshot for as long as it runs, and a new replica
// has nothing to bootstrap from until the producer writes another
// snapshot (Litestream: daily). A store's error must be retried.
func TestLazyIndexReadErrorNotCorrupt(t *testing.T) {
	defer func(old int64) { tailGuess = old }(tailGuess)
	tailGuess = 256 // the index (611 bytes) is read by a second GET
	data := lazySnapshotBytes(t)
	size := int64(len(data))
	indexOff := size - tailSize - int64(binary.BigEndian.Uint64(data[size-tailSize:]))
	w := newWorld(t, 4096, false)
	r := w.openReplica()
	t.Cleanup(func() { r.Close() })
	hdr, _, err := ltx.DecodeHeader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(ctx context.Context, off, n int64) (io.ReadCloser, error) {
		var rd io.Reader = bytes.NewReader(data[off : off+n])
		if off == indexOff {
			rd = &brokenAfter{r: rd, n: 7}
		}
		return io.NopCloser(rd), nil
	}
	want := ltxguard.Want{MinTXID: hdr.MinTXID, MaxTXID: hdr.MaxTXID, Size: size}
	_, _, err = r.BeginHydration(LazySnapshot{Want: want, Fetch: fetch, Ctx: context.Background()})
	if err == nil {
		t.Fatal("the index GET failed, and the lazy bootstrap began")
	}
	if errors.Is(err, ErrCorrupt) {
		t.Fatalf("a read error of the store's is taken for a corrupt snapshot (which the follower rejects): %v", err)
	}
}
