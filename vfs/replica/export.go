package replica

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/internal/crc64iso"
	"github.com/walrust/walrust/vfs/internal/durable"
)

// Exported describes a plain SQLite database that Export wrote.
type Exported struct {
	Path      string
	TXID      ltx.TXID
	Timestamp time.Time // when the primary committed TXID
	PageSize  uint32
	Commit    uint32 // size in pages
	// Checksum is the LTX database checksum at TXID, computed from the
	// file's pages (and checked against the one the replica recorded, if
	// it had one): what a publisher continuing this lineage starts from.
	Checksum ltx.Checksum
	// HeaderKnown says that page 1's header is the primary's own, byte for
	// byte. Without it (a replica made by an older walrust, which did not
	// keep that header, and whose page 1 has not changed since) the file
	// has walrust's rollback-journal header; its content is the same.
	HeaderKnown bool
	// WAL says the primary's header is that of a WAL-mode database (file
	// format bytes 18 and 19 are 2), and so is the exported file's.
	WAL bool
}

// exportFoldWait bounds how long Export waits for folds that other
// processes' readers of the base file hold off.
const exportFoldWait = 10 * time.Second

// Export writes the database at the replica's head to out as a plain SQLite
// database, the primary's own file at that TXID: everything applied is
// folded first, page 1 gets back the header the primary wrote (its journal
// mode included), and the database checksum is computed over the pages
// written and checked against the replica's. out is replaced atomically: a
// temporary file next to it is synced and renamed over it.
//
// No reader of this replica may hold a version below the head: Export is
// for a replica that is not served (a restore, a promotion).
func (r *Replica) Export(ctx context.Context, out string) (Exported, error) {
	if err := r.foldAll(ctx); err != nil {
		return Exported{}, fmt.Errorf("export %s: %w", r.path, err)
	}
	r.mu.RLock()
	st, base := r.state, r.base
	r.mu.RUnlock()
	ex := Exported{
		Path: out, TXID: st.TXID, Timestamp: st.Timestamp, PageSize: st.PageSize, Commit: st.Commit,
		HeaderKnown: len(st.Page1Header) == headerSize,
	}
	if ex.HeaderKnown {
		ex.WAL = st.Page1Header[18] == 2 && st.Page1Header[19] == 2
	}
	tmp, err := durable.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+"-*.tmp")
	if err != nil {
		return Exported{}, fmt.Errorf("export %s: %w", r.path, err)
	}
	defer os.Remove(tmp.Name()) // after the rename there is nothing there
	ex.Checksum, err = copyPages(ctx, tmp, base.f, &st)
	if err == nil && st.Checksum != 0 && ex.Checksum != st.Checksum {
		err = fmt.Errorf("the pages' checksum %s is not the %s recorded at TXID %s: the file was changed by something other than walrust; %s",
			ex.Checksum, st.Checksum, st.TXID, startOver(r.path))
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), out)
	}
	if err == nil {
		err = durable.SyncDir(filepath.Dir(out))
	}
	if err != nil {
		return Exported{}, fmt.Errorf("export %s to %s: %w", r.path, out, err)
	}
	return ex, nil
}

// foldAll folds until the base file holds the head, waiting (bounded) for
// readers in other processes that hold folds off.
func (r *Replica) foldAll(ctx context.Context) error {
	deadline := time.Now().Add(exportFoldWait)
	for {
		r.mu.RLock()
		done := r.head != nil && r.head == r.root && r.state.Staged == nil
		empty := r.head == nil
		r.mu.RUnlock()
		switch {
		case empty:
			return ErrNoReplica
		case done:
			return nil
		}
		folded, err := r.Fold()
		if err != nil {
			return err
		}
		if folded {
			continue
		}
		if time.Now().After(deadline) {
			return errors.New("cannot fold everything applied: a reader holds an older version, or other processes keep reading the file")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(foldLockWait):
		}
	}
}

// copyPages copies the base file's commit pages to w, page 1 with the
// primary's header, and returns the database checksum of what it wrote
// (page 1 as the primary wrote it even when its header is unknown, so that
// the checksum is the lineage's). The lock page is written as zeros. It
// reads and writes exportChunk bytes at a time (one page per system call
// made a gigabyte half a million of them).
func copyPages(ctx context.Context, w io.WriterAt, base io.ReaderAt, st *State) (ltx.Checksum, error) {
	ps := int64(st.PageSize)
	per := max(1, exportChunk/ps) // pages per chunk
	buf := make([]byte, per*ps)
	hasher := crc64iso.New()
	lockPgno := ltx.LockPgno(st.PageSize)
	sum := ltx.ChecksumFlag
	for first := int64(1); first <= int64(st.Commit); first += per {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		chunk := buf[:min(per, int64(st.Commit)-first+1)*ps]
		off := (first - 1) * ps
		n, err := base.ReadAt(chunk, off)
		if err == io.EOF {
			clear(chunk[n:]) // a trailing lock page is not stored
		} else if err != nil {
			return 0, fmt.Errorf("read pages %d-%d: %w", first, first+int64(len(chunk))/ps-1, err)
		}
		for i := int64(0); i < int64(len(chunk)); i += ps {
			pgno, page := uint32(first+i/ps), chunk[i:i+ps]
			switch {
			case pgno == lockPgno:
				clear(page)
			case pgno == 1 && len(st.Page1Header) == headerSize:
				copy(page, st.Page1Header)
				if c := ltx.ChecksumPageWithHasher(hasher, 1, page); c != st.Page1Checksum {
					return 0, fmt.Errorf("page 1 with the recorded header has checksum %s, not the primary's %s", c, st.Page1Checksum)
				}
				sum ^= st.Page1Checksum
			case pgno == 1:
				copy(page, sqliteMagic)
				sum ^= st.Page1Checksum
			default:
				sum ^= ltx.ChecksumPageWithHasher(hasher, pgno, page)
			}
		}
		if _, err := w.WriteAt(chunk, off); err != nil {
			return 0, fmt.Errorf("write pages %d-%d: %w", first, first+int64(len(chunk))/ps-1, err)
		}
	}
	return ltx.ChecksumFlag | sum, nil
}

// exportChunk is how many bytes copyPages reads and writes at a time (a
// variable for tests).
var exportChunk int64 = 1 << 20
