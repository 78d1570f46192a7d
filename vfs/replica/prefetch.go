package replica

import (
	"errors"
	"io"
)

// prefetcher reads a stream on a goroutine of its own, a few chunks ahead
// of its reader: a bootstrap then decodes one part of the snapshot while
// the next arrives, instead of waiting on the network between pages. The
// chunks circulate, so memory stays bounded (prefetchChunks ×
// prefetchChunkBytes) whatever the snapshot's size.
type prefetcher struct {
	full chan prefetchChunk
	free chan []byte
	stop chan struct{}
	done chan struct{}

	cur  []byte // what is left of the chunk being read
	buf  []byte // that chunk's buffer, given back when it is used up
	err  error  // what the stream ended with, once cur is used up
	over bool
}

type prefetchChunk struct {
	b   []byte
	err error
}

const (
	prefetchChunks     = 4
	prefetchChunkBytes = 256 << 10
)

// prefetch starts reading rd. The caller must Close the prefetcher: only
// then has it stopped reading rd.
func prefetch(rd io.Reader) *prefetcher {
	p := &prefetcher{
		full: make(chan prefetchChunk, prefetchChunks), free: make(chan []byte, prefetchChunks),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	for range prefetchChunks - 1 { // one more is always with the reader
		p.free <- make([]byte, prefetchChunkBytes)
	}
	p.buf = make([]byte, prefetchChunkBytes)
	p.cur = p.buf[:0]
	go p.run(rd)
	return p
}

func (p *prefetcher) run(rd io.Reader) {
	defer close(p.done)
	for {
		var b []byte
		select {
		case b = <-p.free:
		case <-p.stop:
			return
		}
		// Fill most of a chunk, so that the reader takes a chunk per
		// 200-odd KiB, not one per network packet.
		n, err := io.ReadAtLeast(rd, b, len(b)/2)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = io.EOF // the stream ended in this chunk: the decoder judges if too soon
		}
		select {
		case p.full <- prefetchChunk{b[:n], err}:
		case <-p.stop:
			return
		}
		if err != nil {
			return
		}
	}
}

func (p *prefetcher) Read(b []byte) (int, error) {
	for len(p.cur) == 0 {
		if p.over {
			return 0, p.err
		}
		p.free <- p.buf[:cap(p.buf)]
		c := <-p.full
		p.buf, p.cur, p.err = c.b, c.b, c.err
		p.over = c.err != nil
	}
	n := copy(b, p.cur)
	p.cur = p.cur[n:]
	return n, nil
}

// Close stops the reading goroutine and waits for it: after Close, the
// stream is not read any more. It waits for a read in progress to return,
// which the stream's own deadline and context bound.
func (p *prefetcher) Close() {
	close(p.stop)
	<-p.done
}
