package follow

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/walrust/walrust/vfs/store"
)

const (
	// fetchParallel bounds concurrent downloads: on S3 a small file costs a
	// round trip, so a replica that is many files behind fetches several at
	// once, and still applies them strictly in order.
	fetchParallel = 4
)

// fetchMaxBuffered is the largest file fetched ahead into memory; larger
// ones (compactions, snapshots) are streamed when their turn comes. A
// variable so that tests can stream small files.
var fetchMaxBuffered int64 = 8 << 20

// fetched is one file's download: its bytes, or the error that stopped it.
type fetched struct {
	data []byte
	err  error
}

// fetchInOrder calls apply for each file, in order, with a reader of its
// content. Small files are downloaded ahead of the one being applied, at
// most fetchParallel at a time, and a download holds its slot until its
// file is applied: memory stays within fetchParallel × fetchMaxBuffered
// however long the plan and however slow an apply. Slots are taken in plan
// order, by one goroutine, so the file applied next always has one or is
// next to get one. The first error stops everything.
func fetchInOrder(ctx context.Context, st store.Reader, files []store.FileInfo, apply func(store.FileInfo, io.Reader, *sourceReader) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	buffered := func(fi store.FileInfo) bool { return fi.Size > 0 && fi.Size <= fetchMaxBuffered }
	results := make([]chan fetched, len(files))
	for i, fi := range files {
		if buffered(fi) {
			results[i] = make(chan fetched, 1)
		}
	}
	slots := make(chan struct{}, fetchParallel)
	dispatched := make(chan struct{})
	go func() {
		defer close(dispatched)
		for i, fi := range files {
			if results[i] == nil {
				continue // streamed in turn
			}
			select {
			case slots <- struct{}{}: // given back once file i is applied
			case <-ctx.Done():
				return
			}
			go func(fi store.FileInfo, out chan<- fetched) { out <- download(ctx, st, fi) }(fi, results[i])
		}
	}()
	defer func() {
		cancel() // the dispatcher may wait for a slot no one will give back
		<-dispatched
	}()
	for i, fi := range files {
		if results[i] == nil {
			if err := streamOne(ctx, st, fi, apply); err != nil {
				return err
			}
			continue
		}
		var res fetched
		select {
		case res = <-results[i]:
		case <-ctx.Done():
			return ctx.Err()
		}
		if res.err != nil {
			return fmt.Errorf("fetch %s (retrying at the next poll): %w", fi, res.err)
		}
		// The bytes are all here: any error now is the file's, not the store's.
		err := apply(fi, bytes.NewReader(res.data), &sourceReader{})
		<-slots
		if err != nil {
			return err
		}
	}
	return nil
}

func download(ctx context.Context, st store.Reader, fi store.FileInfo) fetched {
	rc, err := openFile(ctx, st, fi)
	if err != nil {
		return fetched{err: err}
	}
	defer rc.Close()
	// The body is held to fi.Size (openFile), so the buffer never grows
	// past what was allocated here.
	var buf bytes.Buffer
	buf.Grow(int(fi.Size))
	if _, err := buf.ReadFrom(rc); err != nil {
		return fetched{err: err}
	}
	return fetched{data: buf.Bytes()}
}

func streamOne(ctx context.Context, st store.Reader, fi store.FileInfo, apply func(store.FileInfo, io.Reader, *sourceReader) error) error {
	rc, err := openFile(ctx, st, fi)
	if err != nil {
		return fmt.Errorf("fetch %s (retrying at the next poll): %w", fi, err)
	}
	defer rc.Close()
	src := &sourceReader{r: rc}
	if err := apply(fi, src, src); err != nil {
		if src.err != nil && ctx.Err() == nil {
			// apply retries it (it is not the file's fault); say so, and why.
			return fmt.Errorf("fetch %s (retrying at the next poll): %w", fi, src.err)
		}
		return err
	}
	return nil
}

// sourceReader remembers an error from the store, so that a dropped
// connection is not mistaken for a corrupt file. A clean io.EOF that comes
// too early is the file's fault (it is truncated), not the store's.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}
