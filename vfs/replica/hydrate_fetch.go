package replica

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/internal/ltxguard"
)

// tailGuess is how much of a snapshot's end a lazy bootstrap reads at
// first: the trailer, the index size field and, for a database of up to
// some 25,000 pages, the whole index, so that one round trip brings it.
var tailGuess int64 = 256 << 10 // a variable for tests

// fetchLayout reads a snapshot's header (with page 1's frame header after
// it) and its end at once, two ranged GETs in parallel, then the rest of
// the page index if the end did not hold it all, and checks them: one
// round trip before a lazy bootstrap can serve, two for large databases.
// Every read is bounded by the listed size and by tailGuess or the index
// size the checked header allows.
func fetchLayout(ctx context.Context, fetch RangeFunc, want ltxguard.Want) (*snapshotLayout, error) {
	size := want.Size
	if size < ltx.HeaderSize+ltx.PageHeaderSize+endMarkerSize+tailSize {
		return nil, corrupt(fmt.Errorf("lazy bootstrap: a snapshot of %d bytes", size))
	}
	read := func(off, n int64) ([]byte, error) {
		ctx, cancel := context.WithTimeout(ctx, demandTimeout)
		defer cancel()
		rc, err := fetch(ctx, off, n)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		b := make([]byte, n) // a header's size, or at most tailGuess
		if _, err := io.ReadFull(rc, b); err != nil {
			return nil, fmt.Errorf("lazy bootstrap: read [%d, +%d): %w", off, n, err)
		}
		return b, nil
	}
	headN := int64(ltx.HeaderSize + ltx.PageHeaderSize)
	tailStart := max(headN, size-tailGuess)
	var tail []byte
	var terr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tail, terr = read(tailStart, size-tailStart)
	}()
	head, herr := read(0, headN)
	wg.Wait()
	if herr != nil {
		return nil, herr
	}
	if terr != nil {
		return nil, terr
	}
	hdr, err := ltxguard.CheckHeader(head[:ltx.HeaderSize], want)
	if err != nil {
		return nil, corrupt(err)
	}
	indexOff, err := indexBounds(hdr, size, tail[len(tail)-tailSize:len(tail)-ltx.TrailerSize])
	if err != nil {
		return nil, err
	}
	lay := &snapshotLayout{hdr: hdr, hdrRaw: head[:ltx.HeaderSize], size: size, indexOff: indexOff}
	if indexOff >= tailStart {
		err = lay.parseIndex(bytes.NewReader(tail[indexOff-tailStart:]))
	} else {
		ctx, cancel := context.WithTimeout(ctx, demandTimeout+time.Duration((size-indexOff)>>20)*time.Second)
		var rc io.ReadCloser
		if rc, err = fetch(ctx, indexOff, size-indexOff); err == nil {
			err = lay.parseIndex(rc)
			rc.Close()
		}
		cancel()
	}
	if err != nil {
		return nil, fmt.Errorf("lazy bootstrap: page index: %w", err)
	}
	// A snapshot of the old frame format cannot be read by range: page 1's
	// frame header says which it is, before anything is served.
	if _, n := lay.frame(1); n > 0 {
		if fh := head[ltx.HeaderSize:]; fh[4] != 0 || fh[5] != byte(ltx.PageHeaderFlagSize) {
			return nil, errOldFrames
		}
	}
	return lay, nil
}
