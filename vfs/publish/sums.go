package publish

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/internal/durable"
)

// The per-page checksums of the image: 8 bytes per page (the LTX page
// checksum, big-endian; 0 for the lock page), in the file "sums" of the
// work directory. They are derived from the image and kept beside it by
// applyRedo, so that comparing a database with the published state reads
// the database and 1/512 of its size, not the image too, and the running
// checksum moves without reading old pages. A missing or short file
// (a work directory of an earlier version, one Adopt made) is rebuilt
// from the image by load.
const (
	sumsFile = "sums"
	sumSize  = 8
)

// readSum reads the checksum of page pgno.
func readSum(f io.ReaderAt, pgno uint32) (ltx.Checksum, error) {
	var b [sumSize]byte
	if _, err := f.ReadAt(b[:], int64(pgno-1)*sumSize); err != nil {
		return 0, fmt.Errorf("read checksum of page %d: %w", pgno, err)
	}
	return ltx.Checksum(binary.BigEndian.Uint64(b[:])), nil
}

func putSum(b []byte, sum ltx.Checksum) { binary.BigEndian.PutUint64(b, uint64(sum)) }

// checkSums makes sure the checksum file describes the published state:
// commit pages whose checksums add up to sum, the position's database
// checksum. Otherwise (a work directory of an earlier version, one Adopt
// made, a damaged file) it is rebuilt from the image, which must then add
// up to sum itself. The rebuilt file replaces the old one atomically.
func (w *workDir) checkSums(image string, commit uint32, sum ltx.Checksum) error {
	if got, err := sumsTotal(w.path(sumsFile), commit); err == nil && got == sum {
		return nil
	}
	img, f, err := OpenImage(w.path(image))
	if err != nil {
		return fmt.Errorf("rebuild page checksums: %w", err)
	}
	defer f.Close()
	tmp := w.path(sumsFile + ".tmp")
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, durable.Mode)
	if err != nil {
		return fmt.Errorf("rebuild page checksums: %w", err)
	}
	bw := bufio.NewWriterSize(out, 64<<10)
	h := ltx.NewHasher()
	lock := ltx.LockPgno(img.PageSize)
	var b [sumSize]byte
	total := ltx.ChecksumFlag
	pr := newPageReader(img)
	for pgno := uint32(1); pgno <= img.Commit && err == nil; pgno++ {
		var s ltx.Checksum
		if pgno != lock {
			var data []byte
			if data, err = pr.page(pgno); err != nil {
				break
			}
			s = ltx.ChecksumPageWithHasher(h, pgno, data)
		}
		total ^= s
		putSum(b[:], s)
		_, err = bw.Write(b[:])
	}
	if err == nil && ltx.ChecksumFlag|total != sum {
		err = fmt.Errorf("the image's checksum is %s, the position's %s", ltx.ChecksumFlag|total, sum)
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = out.Sync()
	}
	err = errors.Join(err, out.Close())
	if err == nil {
		err = os.Rename(tmp, w.path(sumsFile))
	}
	if err == nil {
		err = durable.SyncDir(w.dir)
	}
	if err != nil {
		return fmt.Errorf("rebuild page checksums: %w", err)
	}
	return nil
}

// sumsTotal is the database checksum the checksum file adds up to, which
// must hold commit pages.
func sumsTotal(path string, commit uint32) (ltx.Checksum, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Size() != int64(commit)*sumSize {
		return 0, errors.New("page checksums of another size")
	}
	br := bufio.NewReaderSize(f, 64<<10)
	var b [sumSize]byte
	total := ltx.ChecksumFlag
	for range commit {
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return 0, err
		}
		total ^= ltx.Checksum(binary.BigEndian.Uint64(b[:]))
	}
	return ltx.ChecksumFlag | total, nil
}

// writeSumsDelta writes to w an LTX file that turns the published state
// (pre, commit prevCommit, page checksums sums) into cur: the pages of cur
// whose checksum differs from the published one, every page past
// prevCommit, and the running checksum moved by exactly those. cur is
// read once, in order; the published image not at all.
func writeSumsDelta(w io.Writer, sums io.Reader, prevCommit uint32, cur Image, pre ltx.Pos, txid ltx.TXID, ts time.Time, opts *EncodeOptions) (_ FileStats, err error) {
	name := ltx.FormatFilename(pre.TXID+1, txid)
	if pre.PostApplyChecksum&ltx.ChecksumFlag == 0 || cur.Commit == 0 {
		return FileStats{}, fmt.Errorf("write delta %s: no published state to compare with", name)
	}
	hdr := newHeader(cur, pre.TXID+1, txid, ts, false)
	hdr.PreApplyChecksum = pre.PostApplyChecksum
	enc, err := newFileEncoder(w, hdr, opts)
	if err != nil {
		return FileStats{}, fmt.Errorf("write delta %s: %w", name, err)
	}
	defer func() { err = errors.Join(err, enc.cleanup()) }()

	br := bufio.NewReaderSize(sums, 64<<10)
	var b [sumSize]byte
	pages := newPageReader(cur)
	lock := ltx.LockPgno(cur.PageSize)
	last := max(prevCommit, cur.Commit)
	total := int64(last) * int64(cur.PageSize)
	sum := pre.PostApplyChecksum
	for pgno := uint32(1); pgno <= last; pgno++ {
		var old ltx.Checksum
		if pgno <= prevCommit {
			if _, err := io.ReadFull(br, b[:]); err != nil {
				return FileStats{}, fmt.Errorf("write delta %s: page checksums: %w", name, err)
			}
			old = ltx.Checksum(binary.BigEndian.Uint64(b[:]))
		}
		if pgno == lock {
			continue
		}
		if pgno > cur.Commit {
			sum ^= old
			continue
		}
		data, err := pages.page(pgno)
		if err != nil {
			return FileStats{}, fmt.Errorf("write delta %s: %w", name, err)
		}
		now := ltx.ChecksumPageWithHasher(enc.hasher, pgno, data)
		if pgno <= prevCommit && now == old {
			enc.progress(pgno, last, cur.PageSize, total)
			continue
		}
		sum ^= old ^ now
		if err := enc.page(pgno, data); err != nil {
			return FileStats{}, fmt.Errorf("write delta %s: %w", name, err)
		}
		enc.progress(pgno, last, cur.PageSize, total)
	}
	return enc.close(ltx.ChecksumFlag | sum)
}
