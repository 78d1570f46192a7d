package crc64iso

import (
	"hash/crc64"
	"math/rand/v2"
	"testing"
)

// TestMatchesStdlib checks Update against hash/crc64 for every length up
// to a few blocks, at every alignment, from random registers, and for
// large inputs.
func TestMatchesStdlib(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 1<<20+64)
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	check := func(crc uint64, p []byte) {
		t.Helper()
		if got, want := Update(crc, p), crc64.Update(crc, table, p); got != want {
			t.Fatalf("Update(%#x, %d bytes) = %#x, hash/crc64 says %#x", crc, len(p), got, want)
		}
	}
	for n := 0; n <= 4*blockSize+17; n++ {
		for off := range 17 {
			check(rng.Uint64(), buf[off:off+n])
		}
		check(0, buf[:n])
	}
	for _, n := range []int{4096, 4096 + 6, 65536 + 100, 1 << 20} {
		check(0, buf[:n])
		check(rng.Uint64(), buf[3:3+n])
	}
	zero := make([]byte, 8192)
	check(0, zero)
	check(^uint64(0), zero)
}

// TestHash checks the hash.Hash64 against crc64.New across uneven writes.
func TestHash(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	h, want := New(), crc64.New(table)
	for range 200 {
		p := make([]byte, rng.IntN(5000))
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		h.Write(p)
		want.Write(p)
		if h.Sum64() != want.Sum64() || string(h.Sum([]byte("x"))) != string(want.Sum([]byte("x"))) {
			t.Fatalf("after %d bytes: %#x, want %#x", len(p), h.Sum64(), want.Sum64())
		}
	}
	h.Reset()
	want.Reset()
	if h.Sum64() != want.Sum64() || h.Size() != want.Size() || h.BlockSize() != want.BlockSize() {
		t.Fatal("Reset, Size or BlockSize differ")
	}
}

func BenchmarkUpdate4K(b *testing.B) {
	p := make([]byte, 4096)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		Update(0, p)
	}
}

func BenchmarkStdlib4K(b *testing.B) {
	p := make([]byte, 4096)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		crc64.Update(0, table, p)
	}
}
