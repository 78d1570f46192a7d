package replica

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/superfly/ltx"
)

// Staged is a snapshot decoded into a database file next to the replica,
// verified and synced, waiting for Install.
type Staged struct {
	path  string
	Meta  segmentMeta
	Pages int
}

func (r *Replica) stagedPath() string { return r.path + "-replica-staged" }

// StageSnapshot decodes an LTX snapshot stream into a staged database file.
// Pages are written as they are decoded, so memory does not grow with the
// database; the file checksum is checked at the end, and a file that fails
// is removed.
func (r *Replica) StageSnapshot(rd io.Reader) (*Staged, error) {
	path := r.stagedPath()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("stage snapshot: %w", err)
	}
	st, err := decodeSnapshot(f, rd)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	st.path = path
	return st, nil
}

func decodeSnapshot(f *os.File, rd io.Reader) (*Staged, error) {
	dec := ltx.NewDecoder(bufio.NewReaderSize(rd, 256<<10))
	if err := dec.DecodeHeader(); err != nil {
		return nil, fmt.Errorf("decode header: %w", err)
	}
	hdr := dec.Header()
	if !hdr.IsSnapshot() {
		return nil, fmt.Errorf("not a snapshot: TXIDs %s-%s", hdr.MinTXID, hdr.MaxTXID)
	}
	ps := int64(hdr.PageSize)
	data := make([]byte, ps)
	hasher := ltx.NewHasher()
	var sum, page1Sum ltx.Checksum
	var ph ltx.PageHeader
	pages := 0
	bw := bufio.NewWriterSize(f, 1<<20) // pages arrive in order: write sequentially
	next := uint32(1)
	for {
		if err := dec.DecodePage(&ph, data); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("decode page: %w", err)
		}
		if ph.Pgno > hdr.Commit {
			return nil, fmt.Errorf("page %d beyond commit %d", ph.Pgno, hdr.Commit)
		}
		if ph.Pgno < next {
			return nil, fmt.Errorf("page %d out of order", ph.Pgno)
		}
		for ; next < ph.Pgno; next++ { // the lock page is not stored: leave zeros
			if _, err := bw.Write(make([]byte, ps)); err != nil {
				return nil, fmt.Errorf("write staged: %w", err)
			}
		}
		c := ltx.ChecksumPageWithHasher(hasher, ph.Pgno, data)
		sum = ltx.ChecksumFlag | (sum ^ c)
		if ph.Pgno == 1 {
			page1Sum = c
		}
		if _, err := bw.Write(data); err != nil {
			return nil, fmt.Errorf("write staged: %w", err)
		}
		next++
		pages++
	}
	if err := dec.Close(); err != nil {
		return nil, fmt.Errorf("verify snapshot: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("write staged: %w", err)
	}
	if pages == 0 || page1Sum == 0 {
		return nil, errors.New("snapshot has no page 1")
	}
	tr := dec.Trailer()
	if !hdr.NoChecksum() && tr.PostApplyChecksum != sum {
		return nil, fmt.Errorf("snapshot checksum %s does not match its pages (%s)", tr.PostApplyChecksum, sum)
	}
	if err := f.Truncate(int64(hdr.Commit) * ps); err != nil {
		return nil, fmt.Errorf("size staged: %w", err)
	}
	return &Staged{Pages: pages, Meta: segmentMeta{
		MinTXID: hdr.MinTXID, MaxTXID: hdr.MaxTXID, PageSize: hdr.PageSize, Commit: hdr.Commit,
		Timestamp: hdr.Timestamp, Checksum: sum, Page1Checksum: page1Sum,
	}}, nil
}

// Discard removes a staged file that will not be installed.
func (s *Staged) Discard() { os.Remove(s.path) }

// Install makes a staged snapshot the replica's base file and head. Readers
// pinned to the old chain keep reading the old file (still open, now
// unlinked) until they unpin; transactions that start afterwards see only the
// new one. Ordering, so a crash at any instant is finished at the next Open:
//  1. patch page 1 and sync the staged file;
//  2. write the state with Staged set (the intent);
//  3. remove the old chain's segments, rename the staged file over the base,
//     sync the directory;
//  4. write the state without Staged.
func (r *Replica) Install(s *Staged) error {
	counter := r.nextCounter()
	m := s.Meta
	root := &Version{
		r: r, TXID: m.MaxTXID, PageSize: m.PageSize, Commit: m.Commit,
		Timestamp: time.UnixMilli(m.Timestamp).UTC(), Checksum: m.Checksum,
		Page1Checksum: m.Page1Checksum, Counter: counter,
	}
	if err := patchFileHeader(s.path, root); err != nil {
		return fmt.Errorf("install snapshot: %w", err)
	}
	st := r.stateFor(root)
	st.Staged = s.path
	if err := writeState(r.path, &st); err != nil {
		return fmt.Errorf("install snapshot: %w", err)
	}
	r.state = st
	if err := r.finishSwap(); err != nil {
		return fmt.Errorf("install snapshot: %w", err)
	}
	f, err := os.Open(r.path)
	if err != nil {
		return fmt.Errorf("install snapshot: %w", err)
	}
	root.base = &baseFile{f: f}

	r.mu.Lock()
	old := r.root
	r.root, r.head = root, root
	if old != nil {
		old.base.retired = true
	}
	r.mu.Unlock()
	if old != nil {
		r.closeIfRetired(old.base) // now, or at the last Unpin of the old chain
	}
	return nil
}

// finishSwap performs steps 3 and 4 of Install; it is idempotent, so Open
// calls it when a crash interrupted an install.
func (r *Replica) finishSwap() error {
	if err := r.clearLog(); err != nil {
		return err
	}
	staged := r.state.Staged
	if _, err := os.Stat(staged); err == nil {
		if err := os.Rename(staged, r.path); err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := syncDir(filepath.Dir(r.path)); err != nil {
		return err
	}
	r.state.Staged = ""
	r.counter = max(r.counter, r.state.Counter)
	return writeState(r.path, &r.state)
}

// patchFileHeader writes the served form of page 1's header into a database
// file and syncs it.
func patchFileHeader(path string, v *Version) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	var hdr [100]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return fmt.Errorf("read header: %w", err)
	}
	v.patchHeader(hdr[:], 0)
	if _, err := f.WriteAt(hdr[:], 0); err != nil {
		return fmt.Errorf("write header: %w", err)
	}
	return f.Sync()
}
