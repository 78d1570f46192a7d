package replica

import (
	"fmt"
	"math"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// pageBits is one bit per page number: set while some unfolded version of
// a chain holds the page, so that a reader outside Go (the VFS's C layer)
// can tell, without calling in, which pages of its version are the base
// file's. Its words live outside Go's heap (an anonymous mapping), so C may
// keep a pointer to them for the length of a read transaction, and they are
// read and written atomically.
//
// It grows by moving to a larger mapping. A reader that took the old one
// keeps it: there, pages stay set at least as long as in the new one (a
// set bit only sends a read through Go, which is always right), so old
// mappings are kept, not unmapped, until the replica closes.
type pageBits struct {
	words []uint64   // the current mapping
	old   [][]uint64 // earlier mappings, which readers may still hold
}

// minPageBits is the first mapping's size in pages (8 KiB of bits).
const minPageBits = 1 << 16

// set marks pgno, growing the mapping if it does not reach it.
func (b *pageBits) set(pgno uint32) error {
	if int(pgno/64) >= len(b.words) {
		if err := b.grow(pgno); err != nil {
			return err
		}
	}
	atomic.OrUint64(&b.words[pgno/64], 1<<(pgno%64))
	return nil
}

func (b *pageBits) clear(pgno uint32) {
	if int(pgno/64) < len(b.words) {
		atomic.AndUint64(&b.words[pgno/64], ^(uint64(1) << (pgno % 64)))
	}
}

func (b *pageBits) grow(pgno uint32) error {
	n := max(minPageBits, 2*64*len(b.words))
	for n <= int(pgno) {
		n *= 2
	}
	mem, err := syscall.Mmap(-1, 0, n/8, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return fmt.Errorf("page bits for %d pages: %w", n, err)
	}
	words := unsafe.Slice((*uint64)(unsafe.Pointer(&mem[0])), n/64)
	for i := range b.words {
		words[i] = atomic.LoadUint64(&b.words[i])
	}
	if b.words != nil {
		b.old = append(b.old, b.words)
	}
	b.words = words
	return nil
}

// view is the current mapping for a reader: its first word and how many
// pages it covers (0 and nil before any page was set). A mapping for page
// 2^31 or beyond holds 2^32 bits, one more than a uint32 counts: the count
// saturates instead of wrapping to 0 (which would send every read to the
// base file), and still covers every page SQLite can number (up to
// 2^32-2).
func (b *pageBits) view() (unsafe.Pointer, uint32) {
	if len(b.words) == 0 {
		return nil, 0
	}
	return unsafe.Pointer(&b.words[0]), uint32(min(64*uint64(len(b.words)), math.MaxUint32))
}

// release unmaps every mapping; no reader may hold one any more.
func (b *pageBits) release() {
	for _, w := range append(b.old, b.words) {
		if len(w) > 0 {
			syscall.Munmap(unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), 8*len(w)))
		}
	}
	b.words, b.old = nil, nil
}
