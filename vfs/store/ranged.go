package store

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// RangeReader is a store that can read part of a file: what a lazy
// bootstrap needs to fetch a snapshot's header, page index and page frames
// without the rest. Both stores implement it.
type RangeReader interface {
	// OpenRange streams bytes [off, off+n) of a listed file. The range must
	// lie within the listed size (f.Size > 0): a store cannot be asked for
	// bytes its listing did not justify, and the body is held to exactly n
	// bytes (LimitBody), so a short or long answer is an error.
	OpenRange(ctx context.Context, f FileInfo, off, n int64) (io.ReadCloser, error)
}

// ErrNoRange is returned by OpenRange for a store that cannot read ranges.
var ErrNoRange = errors.New("the store cannot read ranges")

// OpenRange reads bytes [off, off+n) of f from st, if st can read ranges.
func OpenRange(ctx context.Context, st Reader, f FileInfo, off, n int64) (io.ReadCloser, error) {
	rr, ok := st.(RangeReader)
	if !ok {
		return nil, fmt.Errorf("open %s range: %w", f, ErrNoRange)
	}
	return rr.OpenRange(ctx, f, off, n)
}

// checkRange refuses a range that the listing does not justify.
func checkRange(f FileInfo, off, n int64) error {
	if f.Size <= 0 {
		return fmt.Errorf("range of %s: the listing gave no size", f)
	}
	if off < 0 || n <= 0 || off > f.Size || n > f.Size-off {
		return fmt.Errorf("range [%d, +%d) of %s: outside its %d listed bytes", off, n, f, f.Size)
	}
	return nil
}

// OpenRange reads part of a file with one positioned read stream.
func (s *FileStore) OpenRange(ctx context.Context, f FileInfo, off, n int64) (io.ReadCloser, error) {
	if err := checkRange(f, off, n); err != nil {
		return nil, err
	}
	fh, err := s.openFile(f)
	if err != nil {
		return nil, err
	}
	// The file must still be the one listed: a replaced file of another
	// size would otherwise serve bytes from elsewhere in it.
	if fi, err := fh.Stat(); err != nil {
		fh.Close()
		return nil, fmt.Errorf("open %s: %w", f, err)
	} else if fi.Size() != f.Size {
		fh.Close()
		return nil, fmt.Errorf("open %s: the file is %d bytes, not the %d listed (it changed since the listing)", f, fi.Size(), f.Size)
	}
	body := struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(fh, off, n), fh}
	return LimitBody(countingReader{body, &s.stats.bytes}, f, n), nil
}

// OpenRange reads part of an object with a ranged GET; a body that breaks
// is resumed like Open's, for the rest of the range only.
func (s *S3Store) OpenRange(ctx context.Context, f FileInfo, off, n int64) (io.ReadCloser, error) {
	op := fmt.Sprintf("open %s %s [%d, +%d)", s, f, off, n)
	if err := checkLevel(f.Level); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := checkRange(f, off, n); err != nil {
		return nil, err
	}
	r := &s3Reader{s: s, ctx: ctx, op: op, key: s.Key(f), off: off, end: off + n, size: off + n, listed: listedSize(f)}
	if err := r.get(); err != nil {
		return nil, err
	}
	return LimitBody(r, f, n), nil
}

// OpenRange opens the store, if it is not open yet, and reads a range.
func (l *lazy) OpenRange(ctx context.Context, f FileInfo, off, n int64) (io.ReadCloser, error) {
	st, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return OpenRange(ctx, st, f, off, n)
}
