package publish

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/internal/durable"
)

// ErrForked is the error of a publish from a promoted database when the
// store has moved past the TXID it was promoted at: another primary (the
// old one, still running) publishes there, and publishing after it would
// fork the lineage. Options.NewLineage overrides it.
var ErrForked = errors.New("the store has moved past the promoted database")

// Adopted is a database that walrust promote made from a replica: the
// state of a store's lineage at TXID, which the next publish continues.
type Adopted struct {
	Store    string // the store the replica followed, as store.Canonical spells it
	TXID     ltx.TXID
	Checksum ltx.Checksum // the LTX database checksum at TXID (with ltx.ChecksumFlag)
	PageSize uint32
	Commit   uint32
	// Image is a file holding the database exactly as published at TXID
	// (replica.Export writes one). Adopt copies it: the publisher keeps
	// its own image of the last published state.
	Image string
}

// Adopt prepares the work directory of the database at dbPath (opts.WorkDir,
// or the default) so that its next publish continues a's lineage: TXID+1,
// with a's checksum as the pre-apply checksum, so that the store's other
// replicas follow without starting over. Whatever the work directory held
// is replaced. It fails when a publisher is using the work directory.
func Adopt(dbPath string, opts Options, a Adopted) error {
	if a.TXID == 0 || !ltx.IsValidPageSize(a.PageSize) || a.Checksum&ltx.ChecksumFlag == 0 {
		return fmt.Errorf("adopt %s: TXID %d, page size %d, checksum %s do not describe a published state", dbPath, a.TXID, a.PageSize, a.Checksum)
	}
	abs, err := filepath.Abs(dbPath)
	if err != nil {
		return fmt.Errorf("adopt %s: %w", dbPath, err)
	}
	if opts.WorkDir == "" {
		opts.WorkDir = abs + "-walrust-publish"
	}
	wd, err := openWorkDir(opts.WorkDir)
	if err != nil {
		return fmt.Errorf("adopt %s: %w", dbPath, err)
	}
	err = adopt(wd, a)
	if cerr := wd.close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("adopt %s: %w", dbPath, err)
	}
	return nil
}

func adopt(wd *workDir, a Adopted) error {
	// The old position goes first: a crash after it leaves a work
	// directory with no position, which publishes a snapshot, never one
	// whose image is not the database it describes.
	if err := os.Remove(wd.path(positionFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	image := imageName(a.TXID)
	if err := wd.tidy(""); err != nil {
		return err
	}
	if err := copyImage(a.Image, wd.path(image), int64(a.PageSize)*int64(a.Commit)); err != nil {
		return err
	}
	return wd.save(position{
		TXID: a.TXID, Checksum: a.Checksum, PageSize: a.PageSize, Commit: a.Commit,
		Image: image, Store: a.Store, Promoted: true,
	})
}

// copyImage copies the database file src, which must be size bytes, to dst
// and syncs it.
func copyImage(src, dst string, size int64) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy image: %w", err)
	}
	defer in.Close()
	if fi, err := in.Stat(); err != nil {
		return fmt.Errorf("copy image: %w", err)
	} else if fi.Size() != size {
		return fmt.Errorf("copy image: %s is %d bytes, not %d", src, fi.Size(), size)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, durable.Mode)
	if err != nil {
		return fmt.Errorf("copy image: %w", err)
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy image to %s: %w", dst, err)
	}
	return nil
}

// checkPromoted is checkStore for a position that Adopt made: the store
// must end exactly at its TXID. Any file may have reached it (the old
// primary's); one past it is another primary's.
func (p *Publisher) checkPromoted(head ltx.TXID) (ltx.TXID, string, error) {
	switch {
	case head > p.pos.TXID && !p.opts.NewLineage:
		return head, "", fmt.Errorf("%w: %s ends at TXID %d, past TXID %d where this database was promoted, so another primary (the old one?) still publishes there; "+
			"stop it and promote again to take its last changes, or publish with --new-lineage to start a new lineage after TXID %d (every replica then starts over from its snapshot)",
			ErrForked, p.st, head, p.pos.TXID, head)
	case head > p.pos.TXID:
		return head, fmt.Sprintf("a new lineage after TXID %d, past TXID %d where this database was promoted", head, p.pos.TXID), nil
	case head < p.pos.TXID:
		return head, fmt.Sprintf("the store ends at TXID %d, before TXID %d where this database was promoted", head, p.pos.TXID), nil
	}
	return head, "", nil
}
