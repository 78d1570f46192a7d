package ltxguard

import (
	"encoding/binary"
	"fmt"
)

// parser walks a byte stream as a sequence of fixed-size fields, each
// checked by a callback once all its bytes are in, and of runs of bytes it
// skips (compressed page data, which the decoder checks itself). Fields are
// never longer than an LTX header.
type parser struct {
	field [128]byte
	have  int                // bytes of the current field so far
	want  int                // its size
	then  func([]byte) error // checks it and says what comes next
	skipN int64              // bytes left to skip
	after func()             // what comes after them
	done  bool               // past the pages: nothing more to check

	lastPgno uint32 // the last page header's page number
}

func (p *parser) need(n int, then func([]byte) error) {
	p.have, p.want, p.then = 0, n, then
}

func (p *parser) skip(n int64, after func()) {
	if n == 0 {
		after()
		return
	}
	p.skipN, p.after = n, after
}

// feed takes the next bytes of the stream. On a broken rule it returns how
// many of b came before the field that broke it, so that the caller passes
// on only those.
func (p *parser) feed(b []byte) (int, error) {
	i := 0
	for i < len(b) && !p.done {
		if p.skipN > 0 {
			n := min(p.skipN, int64(len(b)-i))
			i += int(n)
			if p.skipN -= n; p.skipN == 0 {
				p.after()
			}
			continue
		}
		start := i - p.have // where the field began in b; < 0: in an earlier Read
		k := copy(p.field[p.have:p.want], b[i:])
		p.have += k
		i += k
		if p.have < p.want {
			break
		}
		if err := p.then(p.field[:p.want]); err != nil {
			return max(start, 0), err
		}
	}
	return len(b), nil
}

// Pages without the size flag are LZ4 frames (ltx before v0.5.2): walk the
// frame's blocks so that no block claims more than the frame's own maximum.

const lz4FrameMagic = 0x184D2204

func (g *Reader) onFrameMagic(b []byte) error {
	if m := binary.LittleEndian.Uint32(b); m != lz4FrameMagic {
		return fmt.Errorf("page %d: not an LZ4 frame (magic 0x%08x)", g.p.lastPgno, m)
	}
	g.p.need(2, g.onFrameDescriptor)
	return nil
}

// LZ4 frame descriptor flags (FLG byte).
const (
	lz4FlagDictID        = 1 << 0
	lz4FlagContentSum    = 1 << 2
	lz4FlagContentSize   = 1 << 3
	lz4FlagBlockChecksum = 1 << 4
)

func (g *Reader) onFrameDescriptor(b []byte) error {
	flg, bd := b[0], b[1]
	if flg>>6 != 1 || flg&0x02 != 0 || bd&0x8f != 0 {
		return fmt.Errorf("page %d: bad LZ4 frame descriptor 0x%02x 0x%02x", g.p.lastPgno, flg, bd)
	}
	code := (bd >> 4) & 0x7
	if code < 4 {
		return fmt.Errorf("page %d: bad LZ4 block size code %d", g.p.lastPgno, code)
	}
	g.frameFlags, g.frameBlockMax = flg, 1<<(8+2*int(code)) // 4: 64 KiB … 7: 4 MiB
	extra := int64(1)                                       // the header checksum
	if flg&lz4FlagContentSize != 0 {
		extra += 8
	}
	if flg&lz4FlagDictID != 0 {
		extra += 4
	}
	g.p.skip(extra, g.nextBlock)
	return nil
}

func (g *Reader) nextBlock() { g.p.need(4, g.onFrameBlock) }

func (g *Reader) onFrameBlock(b []byte) error {
	v := binary.LittleEndian.Uint32(b)
	if v == 0 { // the end mark
		if g.frameFlags&lz4FlagContentSum != 0 {
			g.p.skip(4, g.nextPage)
		} else {
			g.nextPage()
		}
		return nil
	}
	n := int64(v & 0x7fffffff)
	if n > int64(g.frameBlockMax) {
		return fmt.Errorf("page %d: LZ4 block of %d bytes in a frame of %d-byte blocks", g.p.lastPgno, n, g.frameBlockMax)
	}
	if g.frameFlags&lz4FlagBlockChecksum != 0 {
		n += 4
	}
	g.p.skip(n, g.nextBlock)
	return nil
}
