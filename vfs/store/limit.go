package store

import (
	"fmt"
	"io"
)

// LimitBody holds a download to the size its listing gave (size >= 0): a
// body that goes on past it (the object was replaced since the listing, or
// the server misbehaves) fails as soon as the first byte too many arrives,
// before anything buffers it, and one that ends short fails too, so that a
// broken transfer is not mistaken for a truncated file. Both are faults of
// the store: a later poll lists and tries again. A negative size leaves the
// body unbounded.
func LimitBody(rc io.ReadCloser, f FileInfo, size int64) io.ReadCloser {
	if size < 0 {
		return rc
	}
	return &sizedBody{ReadCloser: rc, f: f, size: size, left: size}
}

type sizedBody struct {
	io.ReadCloser
	f          FileInfo
	size, left int64 // listed size; bytes still allowed
}

func (b *sizedBody) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if b.left == 0 {
		// All the listed bytes are in: the body must end here.
		var one [1]byte
		for {
			n, err := b.ReadCloser.Read(one[:])
			if n > 0 {
				return 0, fmt.Errorf("read %s: the store sent more than the %d bytes it listed (the object changed since the listing, or the server misbehaves)", b.f, b.size)
			}
			if err != nil {
				return 0, err // io.EOF: exactly the listed size
			}
		}
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	if err == io.EOF && b.left > 0 {
		err = fmt.Errorf("read %s: the body ended after %d of the %d bytes listed: %w", b.f, b.size-b.left, b.size, io.ErrUnexpectedEOF)
	}
	return n, err
}
