package replica

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/internal/ltxguard"
	"github.com/walrust/walrust/vfs/testkit/ltxtest"
)

// decodeAll reads every page of a snapshot source and finishes it: the
// pages, back to back, and the database checksum; or the first error.
func decodeAll(src snapshotSource) ([]byte, ltx.Checksum, error) {
	var out []byte
	var ph ltx.PageHeader
	buf := make([]byte, src.header().PageSize)
	for {
		if err := src.page(&ph, buf); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, 0, err
		}
		out = append(out, buf...)
	}
	sum, err := src.finish()
	return out, sum, err
}

// FuzzBlockReader holds the block reader to the ltx decoder on any bytes
// under the name their own header gives: a snapshot it accepts, the
// decoder accepts too, with the same pages and database checksum. (The
// block reader refuses a little more: a block that decompresses to less
// than a page, an index whose frames are not the ones decoded.)
func FuzzBlockReader(f *testing.F) {
	f.Add(ltxtest.Encode(f, nil, fuzzImage(4, 1), fuzzPageSize, 1, 3, 0, true, fuzzTime))
	f.Add(ltxtest.Encode(f, nil, fuzzImage(9, 7), fuzzPageSize, 1, 1, 0, false, fuzzTime))
	f.Add(ltxtest.Encode(f, nil, fuzzImage(1, 3), fuzzPageSize, 1, 1, 0, false, fuzzTime))
	f.Fuzz(func(t *testing.T, data []byte) {
		want := fuzzWant(data, true)
		br := guarded(bytes.NewReader(data), want)
		if !blockReadable(br) {
			return
		}
		r, err := newBlockReader(br)
		if err != nil {
			return
		}
		pages, sum, err := decodeAll(r)
		if err != nil {
			return
		}
		dec := newDecoder(bytes.NewReader(data), want)
		if err := dec.DecodeHeader(); err != nil {
			t.Fatalf("the block reader accepts a header the decoder refuses: %v", err)
		}
		want2, sum2, err := decodeAll(ltxSource{dec})
		if err != nil {
			t.Fatalf("the block reader accepts a snapshot the decoder refuses: %v", err)
		}
		if !bytes.Equal(pages, want2) || sum != sum2 {
			t.Fatalf("the block reader decodes %d bytes (checksum %s), the decoder %d (%s)", len(pages), sum, len(want2), sum2)
		}
	})
}

// literalSnapshot is a snapshot of LZ4 blocks of bytes that do not
// repeat: every byte of a block is a literal, so changing one changes the
// page (in a block of repeated bytes, a match offset can change and
// decompress to the same page, which is then the same file to LTX's
// checksum).
func literalSnapshot(t *testing.T) ([]byte, ltxguard.Want) {
	t.Helper()
	img := fuzzImage(6, 5)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 100; i < len(img); i++ {
		img[i] = byte(rng.Uint32())
	}
	good := ltxtest.Encode(t, nil, img, fuzzPageSize, 1, 2, 0, false, fuzzTime)
	return good, fuzzWant(good, true)
}

// errNotBlocks: a file the block reader leaves to the ltx decoder.
var errNotBlocks = errors.New("not read by the block reader")

// readBlocks reads a whole snapshot with the block reader, behind the
// guard.
func readBlocks(data []byte, want ltxguard.Want) error {
	br := guarded(bytes.NewReader(data), want)
	if !blockReadable(br) {
		return errNotBlocks // the ltx decoder's to judge
	}
	r, err := newBlockReader(br)
	if err != nil {
		return err
	}
	_, _, err = decodeAll(r)
	return err
}

// TestBlockReaderRefuses: the block reader refuses a snapshot of LZ4
// blocks with a changed byte anywhere past the header (a frame, the end
// marker, the index, the trailer), a truncated one, and bytes after the
// trailer.
func TestBlockReaderRefuses(t *testing.T) {
	good, want := literalSnapshot(t)
	read := func(data []byte) error { return readBlocks(data, want) }
	if err := read(good); err != nil {
		t.Fatalf("a good snapshot: %v", err)
	}
	for i := ltx.HeaderSize; i < len(good); i++ {
		bad := bytes.Clone(good)
		bad[i] ^= 0x20
		if err := read(bad); err == nil {
			t.Fatalf("byte %d of %d changed: accepted", i, len(good))
		}
	}
	for _, n := range []int{len(good) - 1, len(good) - ltx.TrailerSize, ltx.HeaderSize + 3} {
		if err := read(good[:n]); err == nil {
			t.Fatalf("cut to %d of %d bytes: accepted", n, len(good))
		}
	}
	if err := read(append(bytes.Clone(good), 0)); err == nil {
		t.Fatal("a byte after the trailer: accepted")
	}
}
