package replica

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/internal/ltxguard"
)

// lazySnapshotBytes is a snapshot of a world with a few hundred pages.
func lazySnapshotBytes(t *testing.T) []byte {
	w := newWorld(t, 4096, false)
	w.InsertRows(100, 3000)
	txid := w.AdvanceRef()
	return w.Encode(1, txid)
}

// beginFrom starts a lazy bootstrap from bytes held in memory.
func beginFrom(t *testing.T, data []byte) error {
	t.Helper()
	w := newWorld(t, 4096, false)
	r := w.openReplica()
	t.Cleanup(func() { r.Close() })
	hdr, _, err := ltx.DecodeHeader(bytes.NewReader(data))
	if err != nil {
		return err
	}
	fetch := func(ctx context.Context, off, n int64) (io.ReadCloser, error) {
		if off < 0 || off+n > int64(len(data)) {
			return nil, errors.New("range out of the file")
		}
		return io.NopCloser(bytes.NewReader(data[off : off+n])), nil
	}
	want := ltxguard.Want{MinTXID: hdr.MinTXID, MaxTXID: hdr.MaxTXID, Size: int64(len(data))}
	_, _, err = r.BeginHydration(LazySnapshot{Want: want, Fetch: fetch, Ctx: context.Background()})
	return err
}

// The page index is hostile until it accounts for every byte of the
// file: each lie is refused as corrupt before anything is served.
func TestLazyIndexHostile(t *testing.T) {
	for _, guess := range []int64{tailGuess, 1024} {
		t.Run(fmt.Sprintf("tail_%d", guess), func(t *testing.T) {
			defer func(old int64) { tailGuess = old }(tailGuess)
			tailGuess = guess // 1024: the index is read by a second GET
			testLazyIndexHostile(t)
		})
	}
}

func testLazyIndexHostile(t *testing.T) {
	good := lazySnapshotBytes(t)
	if err := beginFrom(t, good); err != nil {
		t.Fatalf("the good snapshot: %v", err)
	}
	size := len(good)
	indexSize := int(binary.BigEndian.Uint64(good[size-tailSize:]))
	indexOff := size - tailSize - indexSize
	// The first record: pgno 1 (1 byte), offset 100 (1 byte), size (varint).
	for name, spoil := range map[string]func(b []byte){
		"index size field too large":   func(b []byte) { binary.BigEndian.PutUint64(b[size-tailSize:], uint64(size)) },
		"index size field off by one":  func(b []byte) { binary.BigEndian.PutUint64(b[size-tailSize:], uint64(indexSize-1)) },
		"first page is not page 1":     func(b []byte) { b[indexOff] = 2 },
		"first frame not after header": func(b []byte) { b[indexOff+1] = 99 },
		"frame size changed":           func(b []byte) { b[indexOff+2]++ },
		"end marker missing":           func(b []byte) { b[size-tailSize-1] = 5 },
	} {
		t.Run(name, func(t *testing.T) {
			b := bytes.Clone(good)
			spoil(b)
			if err := beginFrom(t, b); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v, want a corrupt snapshot", err)
			}
		})
	}
}
