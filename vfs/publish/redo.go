package publish

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/internal/durable"
)

// The image of the last published state is kept up to date in place, at
// the cost of the change: after a file is published, its pages are
// written into the image. The file itself, renamed to redo-<txid>.ltx, is
// what makes that safe. The position that reaches TXID names it (Redo)
// and is saved before the image is touched, so whatever a crash leaves
// the image at — before the file, after it, or anywhere in between — the
// next load applies the file again and reaches exactly TXID: a file's
// page images are idempotent, and the image is only ever changed by the
// file the saved position names.
const redoPrefix = "redo-"

func redoName(txid ltx.TXID) string { return redoPrefix + txid.String() + ".ltx" }

// keepRedo turns the pending file, just published as txid, into the redo
// file the next position names, durably: the position must never name a
// redo file that a crash could take back.
func (w *workDir) keepRedo(txid ltx.TXID) (string, error) {
	name := redoName(txid)
	if err := os.Rename(w.path(pendingFile), w.path(name)); err != nil {
		return "", fmt.Errorf("keep redo file: %w", err)
	}
	if err := durable.SyncDir(w.dir); err != nil {
		return "", fmt.Errorf("keep redo file: %w", err)
	}
	return name, nil
}

// applyRedo writes the pages of the LTX file redo into the image file and
// their checksums into the sums file (sums.go), cuts both to the file's
// size in pages and syncs them. A snapshot replaces them as a whole. The file's checksum is verified as it is
// read; a file that fails it has already changed the image, so the error
// says the image must not be used.
func applyRedo(image, sums, redo string, txid ltx.TXID) (err error) {
	in, err := os.Open(redo)
	if err != nil {
		return fmt.Errorf("apply %s: %w", redo, err)
	}
	defer in.Close()
	dec := ltx.NewDecoder(bufio.NewReaderSize(in, 256<<10))
	if err := dec.DecodeHeader(); err != nil {
		return fmt.Errorf("apply %s: %w", redo, err)
	}
	hdr := dec.Header()
	if hdr.MaxTXID != txid {
		return fmt.Errorf("apply %s: it reaches TXID %d, not %d", redo, hdr.MaxTXID, txid)
	}
	flags := os.O_RDWR | os.O_CREATE
	if hdr.IsSnapshot() {
		flags |= os.O_TRUNC
	}
	out, err := os.OpenFile(image, flags, durable.Mode)
	if err != nil {
		return fmt.Errorf("apply %s: %w", redo, err)
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("apply %s: %w", redo, cerr)
		}
	}()
	sf, err := os.OpenFile(sums, flags, durable.Mode)
	if err != nil {
		return fmt.Errorf("apply %s: %w", redo, err)
	}
	defer func() {
		if cerr := sf.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("apply %s: %w", redo, cerr)
		}
	}()
	// Pages come in ascending order: a snapshot's checksums are written
	// in one stream, a delta's one by one.
	sw := bufio.NewWriterSize(sf, 64<<10)
	var next uint32 = 1 // the snapshot's next checksum slot
	var b [sumSize]byte
	h := ltx.NewHasher()
	ps := int64(hdr.PageSize)
	buf := make([]byte, ps)
	for {
		var ph ltx.PageHeader
		err := dec.DecodePage(&ph, buf)
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("apply %s: the image is damaged: %w", redo, err)
		}
		if _, err := out.WriteAt(buf, int64(ph.Pgno-1)*ps); err != nil {
			return fmt.Errorf("apply %s: %w", redo, err)
		}
		putSum(b[:], ltx.ChecksumPageWithHasher(h, ph.Pgno, buf))
		if hdr.IsSnapshot() {
			for ; next < ph.Pgno; next++ { // the lock page
				_, err = sw.Write(make([]byte, sumSize))
			}
			_, err = sw.Write(b[:])
			next++
		} else {
			_, err = sf.WriteAt(b[:], int64(ph.Pgno-1)*sumSize)
		}
		if err != nil {
			return fmt.Errorf("apply %s: page checksums: %w", redo, err)
		}
	}
	if err := dec.Close(); err != nil {
		return fmt.Errorf("apply %s: the image is damaged: %w", redo, err)
	}
	if err := sw.Flush(); err != nil {
		return fmt.Errorf("apply %s: page checksums: %w", redo, err)
	}
	// Pages past the end are gone; pages a growing database never wrote
	// (the lock page) read as zeros, as they do in SQLite's file.
	for _, f := range []struct {
		f    *os.File
		size int64
	}{{out, int64(hdr.Commit) * ps}, {sf, int64(hdr.Commit) * sumSize}} {
		if err := f.f.Truncate(f.size); err != nil {
			return fmt.Errorf("apply %s: %w", redo, err)
		}
		if err := f.f.Sync(); err != nil {
			return fmt.Errorf("apply %s: %w", redo, err)
		}
	}
	return nil
}

// validRedoName says whether name is one redoName gives.
func validRedoName(name string) bool {
	return strings.HasPrefix(name, redoPrefix) && strings.HasSuffix(name, ".ltx") && !strings.ContainsRune(name, os.PathSeparator)
}
