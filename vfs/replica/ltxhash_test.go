package replica

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/internal/ltxguard"
	"github.com/walrust/walrust/vfs/testkit/ltxtest"
)

// TestFastFileChecksum: every decoder gets crc64iso's hasher (a newer ltx
// that renamed its field would silently lose the speed), and the file
// checksum it computes still accepts a good file and rejects one with a
// flipped bit in a page.
func TestFastFileChecksum(t *testing.T) {
	if !fastFileChecksum(ltx.NewDecoder(bytes.NewReader(nil))) {
		t.Fatal("the ltx decoder has no hash.Hash64 field named hash: the file checksum falls back to hash/crc64")
	}
	const ps = 4096
	img := make([]byte, 8*ps)
	for i := range img {
		img[i] = byte(i * 7 / 5)
	}
	file := ltxtest.Encode(t, nil, img, ps, 1, 1, 0, true, time.Now())
	decode := func(b []byte) error {
		dec := newDecoder(bytes.NewReader(b), ltxguard.Want{MinTXID: 1, MaxTXID: 1, Snapshot: true})
		if err := dec.DecodeHeader(); err != nil {
			return err
		}
		page := make([]byte, ps)
		var ph ltx.PageHeader
		for {
			if err := dec.DecodePage(&ph, page); err == io.EOF {
				break
			} else if err != nil {
				return err
			}
		}
		return dec.Close()
	}
	if err := decode(file); err != nil {
		t.Fatalf("a good file: %v", err)
	}
	// The trailer's file checksum, changed: only the hash can tell.
	bad := bytes.Clone(file)
	bad[len(bad)-1] ^= 1
	if err := decode(bad); !errors.Is(err, ltx.ErrChecksumMismatch) {
		t.Fatalf("a file whose checksum is wrong: %v, want %v", err, ltx.ErrChecksumMismatch)
	}
}
