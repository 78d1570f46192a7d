package replica

import (
	"testing"
	"unsafe"
)

// TestPageBits: bits are set and cleared one page at a time; growing
// moves to a larger mapping that keeps every bit, and the old mapping, which
// a reader may still hold, keeps its bits too.
func TestPageBits(t *testing.T) {
	var b pageBits
	defer b.release()
	if p, n := b.view(); p != nil || n != 0 {
		t.Fatalf("empty: %v, %d", p, n)
	}
	read := func(p unsafe.Pointer, n, pgno uint32) bool {
		if pgno >= n {
			return false
		}
		return unsafe.Slice((*uint64)(p), n/64)[pgno/64]>>(pgno%64)&1 == 1
	}
	for _, pgno := range []uint32{1, 2, 63, 64, 65535} {
		if err := b.set(pgno); err != nil {
			t.Fatal(err)
		}
	}
	b.clear(2)
	old, oldN := b.view()
	if oldN != minPageBits {
		t.Fatalf("first mapping covers %d pages, want %d", oldN, minPageBits)
	}
	if err := b.set(1 << 20); err != nil {
		t.Fatal(err)
	}
	cur, n := b.view()
	if n <= 1<<20 || cur == old {
		t.Fatalf("after growing: %d pages, same mapping %v", n, cur == old)
	}
	for pgno, want := range map[uint32]bool{1: true, 2: false, 63: true, 64: true, 65535: true, 1 << 20: true, 3: false} {
		if got := read(cur, n, pgno); got != want {
			t.Errorf("page %d: %v, want %v", pgno, got, want)
		}
	}
	b.clear(63)
	if !read(old, oldN, 63) || read(cur, n, 63) {
		t.Errorf("a clear after growing: old mapping %v (want set), new %v (want clear)", read(old, oldN, 63), read(cur, n, 63))
	}
}

// TestPageBitsFarPage: a page at or past 2^31 needs a mapping of 2^32 bits,
// whose size used to wrap to 0 in a uint32: a reader outside Go then read
// every page from the base file, from an older TXID, while a newer version
// held it. The count saturates, and still covers every page SQLite numbers.
func TestPageBitsFarPage(t *testing.T) {
	var b pageBits
	defer b.release()
	for _, pgno := range []uint32{1 << 31, 1<<32 - 2} {
		if err := b.set(pgno); err != nil {
			t.Fatal(err)
		}
		p, n := b.view()
		if pgno >= n {
			t.Fatalf("after page %d: the mapping covers %d pages", pgno, n)
		}
		if unsafe.Slice((*uint64)(p), 1<<26)[pgno/64]>>(pgno%64)&1 != 1 {
			t.Fatalf("page %d is not set", pgno)
		}
	}
}
