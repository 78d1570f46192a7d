// Package publish turns the successive states of a live SQLite database
// into LTX files in a store: a snapshot first, then one file per change that
// holds only the pages that changed.
//
// The low-level half (Image, WriteSnapshot, WriteDelta, ImageChecksum) builds
// LTX files from database images read page by page through io.ReaderAt; it
// knows nothing of SQLite connections or stores and is meant to be reused,
// for example by tests that need LTX streams. The Publisher is the other
// half: inside a read transaction of the live database it reads what
// changed — a WAL database's committed log frames (wal.go, walfollow.go),
// or a rollback database compared page by page with the published state's
// checksums (sums.go) — and writes the result to a store, keeping an image
// of the published state in place (redo.go).
package publish

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/superfly/ltx"
)

// Image is a SQLite database image read page by page: page n (1-based) is
// the PageSize bytes at offset (n-1)*PageSize of R. Commit is the image's
// size in pages. The lock page (ltx.LockPgno) is never read.
type Image struct {
	R        io.ReaderAt
	PageSize uint32
	Commit   uint32
}

// Size is the image's size in bytes.
func (img Image) Size() int64 { return int64(img.PageSize) * int64(img.Commit) }

// NewImage describes the size bytes of r as a database image, taking the page
// size from the SQLite header (offset 16). size must be a non-zero multiple
// of the page size.
func NewImage(r io.ReaderAt, size int64) (Image, error) {
	if size <= 0 {
		return Image{}, errors.New("database image is empty")
	}
	var hdr [2]byte
	if _, err := r.ReadAt(hdr[:], 16); err != nil {
		return Image{}, fmt.Errorf("read page size: %w", err)
	}
	pageSize := uint32(binary.BigEndian.Uint16(hdr[:]))
	if pageSize == 1 {
		pageSize = 65536
	}
	if !ltx.IsValidPageSize(pageSize) {
		return Image{}, fmt.Errorf("not a SQLite database: page size field is %d", pageSize)
	}
	if size%int64(pageSize) != 0 {
		return Image{}, fmt.Errorf("image size %d is not a multiple of the page size %d", size, pageSize)
	}
	pages := size / int64(pageSize)
	if pages > math.MaxUint32 {
		return Image{}, fmt.Errorf("image of %d pages is too large", pages)
	}
	return Image{R: r, PageSize: pageSize, Commit: uint32(pages)}, nil
}

// OpenImage opens a database file as an Image. The caller closes the file.
func OpenImage(path string) (Image, *os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return Image{}, nil, fmt.Errorf("open image: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return Image{}, nil, fmt.Errorf("open image: %w", err)
	}
	img, err := NewImage(f, fi.Size())
	if err != nil {
		f.Close()
		return Image{}, nil, fmt.Errorf("open image %s: %w", path, err)
	}
	return img, f, nil
}

// ImageChecksum is the LTX rolling checksum of a whole image: ChecksumFlag
// ORed with the XOR of ltx.ChecksumPage over every page but the lock page.
func ImageChecksum(img Image) (ltx.Checksum, error) {
	h := ltx.NewHasher()
	sum := ltx.ChecksumFlag
	if err := eachPage(img, func(pgno uint32, data []byte) error {
		sum ^= ltx.ChecksumPageWithHasher(h, pgno, data)
		return nil
	}); err != nil {
		return 0, err
	}
	return ltx.ChecksumFlag | sum, nil
}

// eachPage calls fn with every page of img in order but the lock page,
// which SQLite never writes and LTX files leave out. data is valid until
// fn returns.
func eachPage(img Image, fn func(pgno uint32, data []byte) error) error {
	pr := newPageReader(img)
	lock := ltx.LockPgno(img.PageSize)
	for pgno := uint32(1); pgno <= img.Commit; pgno++ {
		if pgno == lock {
			continue
		}
		data, err := pr.page(pgno)
		if err != nil {
			return err
		}
		if err := fn(pgno, data); err != nil {
			return err
		}
	}
	return nil
}

// readChunk is how many bytes a pageReader reads at once: large enough that
// a scan of a big database is not dominated by system calls, small enough
// that memory stays flat.
const readChunk = 1 << 20

// pageReader reads an image's pages in ascending order, a chunk of pages at a
// time, through one fixed buffer.
type pageReader struct {
	img   Image
	buf   []byte
	first uint32 // page number of buf[0]
	n     uint32 // pages held in buf
}

func newPageReader(img Image) *pageReader {
	per := max(uint32(readChunk)/img.PageSize, 1)
	return &pageReader{img: img, buf: make([]byte, int(per)*int(img.PageSize))}
}

// page returns page pgno (1 <= pgno <= Commit). The slice is valid until the
// next call.
func (r *pageReader) page(pgno uint32) ([]byte, error) {
	if pgno < 1 || pgno > r.img.Commit {
		return nil, fmt.Errorf("page %d is outside the image (%d pages)", pgno, r.img.Commit)
	}
	ps := r.img.PageSize
	if r.n == 0 || pgno < r.first || pgno >= r.first+r.n {
		per := uint32(len(r.buf)) / ps
		n := min(per, r.img.Commit-pgno+1)
		b := r.buf[:int(n)*int(ps)]
		m, err := r.img.R.ReadAt(b, int64(pgno-1)*int64(ps))
		if m < len(b) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			r.n = 0
			return nil, fmt.Errorf("read pages %d-%d: %w", pgno, pgno+n-1, err)
		}
		r.first, r.n = pgno, n
	}
	off := int(pgno-r.first) * int(ps)
	return r.buf[off : off+int(ps)], nil
}
