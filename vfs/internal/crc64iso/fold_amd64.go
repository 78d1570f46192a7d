package crc64iso

import "golang.org/x/sys/cpu"

// useFold: PCLMULQDQ for the products, SSE4.1 for PINSRQ.
var useFold = cpu.X86.HasPCLMULQDQ && cpu.X86.HasSSE41

// foldBlocks folds p (a multiple of 128 bytes, at least 128) into 16 bytes
// written to out, after XORing raw (a CRC register, not inverted) into its
// first 8 bytes. Implemented in fold_amd64.s.
//
//go:noescape
func foldBlocks(raw uint64, p []byte, k *[16]uint64, out *[16]byte)
