package replica

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"testing/iotest"
)

// TestPrefetch: every byte comes through in order, in reads of any size,
// and the stream's error comes after its last byte.
func TestPrefetch(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	data := make([]byte, 3*prefetchChunkBytes+12345)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for _, tc := range []struct {
		name string
		rd   io.Reader
		err  error
	}{
		{"whole", bytes.NewReader(data), io.EOF},
		{"a byte at a time", iotest.OneByteReader(bytes.NewReader(data[:100000])), io.EOF},
		{"half reads", iotest.HalfReader(bytes.NewReader(data)), io.EOF},
		{"an error at the end", io.MultiReader(bytes.NewReader(data), iotest.ErrReader(errBoom)), errBoom},
	} {
		pf := prefetch(tc.rd)
		var got []byte
		buf := make([]byte, 1+rng.IntN(70000))
		var err error
		for err == nil {
			var n int
			n, err = pf.Read(buf[:1+rng.IntN(len(buf))])
			got = append(got, buf[:n]...)
		}
		pf.Close()
		want := data
		if tc.name == "a byte at a time" {
			want = data[:100000]
		}
		if !errors.Is(err, tc.err) || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes (equal: %v), then %v; want %d bytes, then %v", tc.name, len(got), bytes.Equal(got, want), err, len(want), tc.err)
		}
	}
}

var errBoom = errors.New("boom")

// TestPrefetchCloseEarly: a reader that stops half way (a corrupt
// snapshot) closes the prefetcher, which stops reading the stream and
// never touches it again.
func TestPrefetchCloseEarly(t *testing.T) {
	var reads, after atomic.Int64
	closed := atomic.Bool{}
	rd := readerFunc(func(b []byte) (int, error) {
		reads.Add(1)
		if closed.Load() {
			after.Add(1)
		}
		return len(b), nil // an endless stream
	})
	pf := prefetch(rd)
	if _, err := pf.Read(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	pf.Close()
	closed.Store(true)
	if n := reads.Load(); n > prefetchChunks+1 {
		t.Errorf("%d reads of an endless stream: the prefetcher read more than its chunks ahead", n)
	}
	if after.Load() != 0 {
		t.Error("the stream was read after Close returned")
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(b []byte) (int, error) { return f(b) }
