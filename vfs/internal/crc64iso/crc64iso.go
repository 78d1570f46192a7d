// Package crc64iso computes the CRC-64 with the ISO polynomial, the checksum
// of LTX files and of walrust's segments, with the same results as
// hash/crc64 and crc64.MakeTable(crc64.ISO), several times faster on amd64.
//
// hash/crc64 works a byte at a time (slicing-by-8, about 1 GB/s here); a
// bootstrap checksums every byte of the database it decodes, and that was
// half of its CPU time. On amd64 with PCLMULQDQ, Update folds the input 128
// bytes at a time with carry-less multiplications (Intel's "Fast CRC
// Computation for Generic Polynomials Using PCLMULQDQ"; the loop's shape is
// that of github.com/minio/crc64nvme, Apache-2.0), and hands the last 16
// bytes of the fold and any tail to hash/crc64. The fold's constants are
// computed here from the polynomial, not copied.
package crc64iso

import (
	"hash"
	"hash/crc64"
	"math/bits"
)

var table = crc64.MakeTable(crc64.ISO)

// Update returns crc updated with p, as crc64.Update(crc, ISO table, p).
func Update(crc uint64, p []byte) uint64 {
	if n := len(p) &^ (blockSize - 1); useFold && n >= minFold {
		// The fold takes the register (crc64 inverts it before and after)
		// and leaves 16 bytes whose CRC from a zero register is the CRC
		// of all of p[:n] from crc.
		var rest [16]byte
		foldBlocks(^crc, p[:n], &consts, &rest)
		crc = crc64.Update(^uint64(0), table, rest[:])
		p = p[n:]
	}
	return crc64.Update(crc, table, p)
}

const (
	blockSize = 128 // bytes folded at once: eight 16-byte lanes
	minFold   = 256 // below this the tables are as fast
)

// consts are the fold's multipliers: for folding a 16-byte lane forward by
// d bits, the pair (x^(d+63) mod P, x^(d-1) mod P) bit-reversed, for its
// first and second 8 bytes (the -1: a carry-less product of bit-reversed
// operands comes out one bit short). [0:2] fold by 1024 bits (the loop,
// eight lanes ahead); [2+2i:4+2i] fold lane i of the last block onto lane 7,
// by 128×(7-i) bits.
var consts = func() (k [16]uint64) {
	k[0], k[1] = foldConsts(1024)
	for i := range 7 {
		k[2+2*i], k[3+2*i] = foldConsts(128 * (7 - i))
	}
	return k
}()

func foldConsts(d int) (uint64, uint64) {
	return bits.Reverse64(xPowMod(d + 63)), bits.Reverse64(xPowMod(d - 1))
}

// poly is the ISO polynomial x^64 + x^4 + x^3 + x + 1 without its x^64
// term, in normal (not reversed) bit order.
const poly = 0x1b

// xPowMod returns x^n mod P, in normal bit order.
func xPowMod(n int) uint64 {
	r := uint64(1)
	for range n {
		top := r >> 63
		r <<= 1
		if top == 1 {
			r ^= poly
		}
	}
	return r
}

// New returns a hash.Hash64 that computes what crc64.New(ISO table) does.
func New() hash.Hash64 { return new(digest) }

type digest struct{ crc uint64 }

func (d *digest) Size() int      { return crc64.Size }
func (d *digest) BlockSize() int { return 1 }
func (d *digest) Reset()         { d.crc = 0 }
func (d *digest) Sum64() uint64  { return d.crc }

func (d *digest) Write(p []byte) (int, error) {
	d.crc = Update(d.crc, p)
	return len(p), nil
}

func (d *digest) Sum(in []byte) []byte {
	s := d.crc
	return append(in, byte(s>>56), byte(s>>48), byte(s>>40), byte(s>>32), byte(s>>24), byte(s>>16), byte(s>>8), byte(s))
}
