#include "textflag.h"

// func foldBlocks(raw uint64, p []byte, k *[16]uint64, out *[16]byte)
//
// X0..X7 hold eight 16-byte lanes of the input. Each turn of the loop
// multiplies every lane's two halves by the constants for 1024 bits ahead
// and XORs in the lane 128 bytes further on. At the end lanes 0..6 are
// folded onto lane 7 with the constants for their distance to it.
TEXT ·foldBlocks(SB), NOSPLIT, $0-48
	MOVQ raw+0(FP), AX
	MOVQ p_base+8(FP), SI
	MOVQ p_len+16(FP), CX
	MOVQ k+32(FP), BX
	MOVQ out+40(FP), DI
	SHRQ $7, CX

	MOVOU 0x00(SI), X0
	MOVOU 0x10(SI), X1
	MOVOU 0x20(SI), X2
	MOVOU 0x30(SI), X3
	MOVOU 0x40(SI), X4
	MOVOU 0x50(SI), X5
	MOVOU 0x60(SI), X6
	MOVOU 0x70(SI), X7
	MOVQ  AX, X8
	PXOR  X8, X0

	MOVQ   0(BX), X8       // low half's multiplier, in the low lane
	MOVQ   8(BX), AX
	PINSRQ $1, AX, X9      // high half's multiplier, in the high lane

	CMPQ CX, $1
	JE   tail

loop:
	ADDQ $128, SI
	SUBQ $1, CX

#define FOLD(x, off) \
	MOVOA     x, X10       \
	PCLMULQDQ $0x00, X8, X10 \
	PCLMULQDQ $0x11, X9, x \
	PXOR      X10, x       \
	MOVOU     off(SI), X11 \
	PXOR      X11, x

	FOLD(X0, 0x00)
	FOLD(X1, 0x10)
	FOLD(X2, 0x20)
	FOLD(X3, 0x30)
	FOLD(X4, 0x40)
	FOLD(X5, 0x50)
	FOLD(X6, 0x60)
	FOLD(X7, 0x70)
	CMPQ CX, $1
	JGT  loop

tail:
#define ONTO7(x, koff) \
	MOVQ      koff(BX), X11 \
	PCLMULQDQ $0x00, x, X11 \
	MOVQ      koff+8(BX), AX \
	PINSRQ    $1, AX, X12 \
	PCLMULQDQ $0x11, X12, x \
	PXOR      X11, X7 \
	PXOR      x, X7

	ONTO7(X0, 16)
	ONTO7(X1, 32)
	ONTO7(X2, 48)
	ONTO7(X3, 64)
	ONTO7(X4, 80)
	ONTO7(X5, 96)
	ONTO7(X6, 112)

	MOVOU X7, (DI)
	RET
