package replica

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/internal/ltxguard"
	"github.com/walrust/walrust/vfs/testkit/ltxtest"
)

// The fuzz targets feed Apply and StageSnapshot any bytes under the name
// the bytes' own header gives. Nothing may panic; what is accepted must be
// served whole: a version of the named TXID and its commit's size, every
// page of it readable.

const fuzzPageSize = 512

// fuzzImage is a database of n pages: a SQLite header on page 1, and
// pages filled from seed.
func fuzzImage(n int, seed byte) []byte {
	img := make([]byte, n*fuzzPageSize)
	for i := range img {
		img[i] = seed + byte(i/fuzzPageSize)
	}
	copy(img, sqliteMagic)
	binary.BigEndian.PutUint16(img[16:], fuzzPageSize)
	return img
}

var fuzzTime = time.Unix(1700000000, 0)

func fuzzWant(data []byte, snapshot bool) ltxguard.Want {
	want := ltxguard.Want{Snapshot: snapshot, MaxSize: 1 << 24}
	if len(data) >= 32 {
		want.MinTXID = ltx.TXID(binary.BigEndian.Uint64(data[16:]))
		want.MaxTXID = ltx.TXID(binary.BigEndian.Uint64(data[24:]))
	}
	return want
}

// checkServed reads every page of v and checks its size.
func checkServed(t *testing.T, v *Version, want ltxguard.Want) {
	t.Helper()
	if v.TXID != want.MaxTXID {
		t.Fatalf("serves TXID %s for a file named up to %s", v.TXID, want.MaxTXID)
	}
	if v.Size() > want.MaxSize || v.Size() != int64(v.Commit)*int64(v.PageSize) {
		t.Fatalf("size %d for %d pages of %d", v.Size(), v.Commit, v.PageSize)
	}
	buf := make([]byte, v.PageSize)
	for pgno := uint32(1); pgno <= v.Commit; pgno++ {
		if _, err := v.ReadAt(buf, int64(pgno-1)*int64(v.PageSize)); err != nil && err != io.EOF {
			t.Fatalf("read page %d of an accepted file: %v", pgno, err)
		}
	}
}

func FuzzStageSnapshot(f *testing.F) {
	f.Add(ltxtest.Encode(f, nil, fuzzImage(4, 1), fuzzPageSize, 1, 3, 0, true, fuzzTime))
	f.Add(ltxtest.Encode(f, nil, fuzzImage(9, 7), fuzzPageSize, 1, 1, 0, false, fuzzTime))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Open(filepath.Join(t.TempDir(), "r.db"), "file:///fuzz")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		want := fuzzWant(data, true)
		st, err := r.StageSnapshot(context.Background(), bytes.NewReader(data), want)
		if err != nil {
			return
		}
		if err := r.Install(st); err != nil {
			t.Fatalf("install an accepted snapshot: %v", err)
		}
		checkServed(t, r.Head(), want)
	})
}

func FuzzApply(f *testing.F) {
	base := fuzzImage(4, 1)
	next := fuzzImage(6, 2)
	f.Add(ltxtest.Encode(f, base, next, fuzzPageSize, 4, 4, 0, true, fuzzTime))
	f.Add(ltxtest.Encode(f, base, fuzzImage(2, 9), fuzzPageSize, 4, 6, 0, true, fuzzTime))
	f.Add(ltxtest.Encode(f, base, next, fuzzPageSize, 4, 4, ltxtest.Checksum(base, fuzzPageSize), false, fuzzTime))
	snap := ltxtest.Encode(f, nil, base, fuzzPageSize, 1, 3, 0, true, fuzzTime)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Open(filepath.Join(t.TempDir(), "r.db"), "file:///fuzz")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		st, err := r.StageSnapshot(context.Background(), bytes.NewReader(snap), fuzzWant(snap, true))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Install(st); err != nil {
			t.Fatal(err)
		}
		want := fuzzWant(data, false)
		v, err := r.Apply(context.Background(), bytes.NewReader(data), want)
		if err != nil {
			return
		}
		checkServed(t, v, want)
		if _, err := r.Fold(); err != nil {
			t.Fatalf("fold an accepted file: %v", err)
		}
		checkServed(t, r.Head(), want)
	})
}
