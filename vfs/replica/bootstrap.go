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

// Staged is a snapshot decoded into a database file in the log directory,
// verified and synced, waiting for Install.
type Staged struct {
	path  string
	Meta  segmentMeta
	Pages int
}

const stagedExt = ".staged"

// StageSnapshot decodes an LTX snapshot stream into a staged database file.
// Pages are written as they are decoded, so memory does not grow with the
// database; the file checksum is checked at the end, and a file that fails
// is removed.
func (r *Replica) StageSnapshot(rd io.Reader) (*Staged, error) {
	hook("stage:start")
	f, err := os.CreateTemp(r.logDir, ".snapshot-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("stage snapshot: %w", err)
	}
	st, err := decodeSnapshot(f, rd)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err == nil {
		st.path = filepath.Join(r.logDir, fmt.Sprintf("snapshot-%016x-%08x%s", uint64(st.Meta.MaxTXID), r.counter+1, stagedExt))
		err = os.Rename(f.Name(), st.path)
	}
	if err != nil {
		os.Remove(f.Name())
		return nil, err
	}
	hook("stage:done")
	return st, nil
}

func decodeSnapshot(f *os.File, rd io.Reader) (*Staged, error) {
	dec := newDecoder(rd)
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

func (s *Staged) snapshot() *StagedSnapshot {
	m := s.Meta
	return &StagedSnapshot{
		Path: s.path, TXID: m.MaxTXID, Timestamp: time.UnixMilli(m.Timestamp).UTC(), Checksum: m.Checksum,
		PageSize: m.PageSize, Commit: m.Commit, Page1Checksum: m.Page1Checksum,
	}
}

// Install makes a staged snapshot the replica's head. The first one becomes
// the base file by rename. Later ones (a re-bootstrap) are served as a
// version from the staged file, and a fold copies them into the base file
// once no reader needs the old chain: readers of the old chain, and other
// processes that hold the base file open, never see a mix of the two.
//
// Ordering, so that a crash at any instant is finished at the next Open:
// the state names the staged file before anything depends on it; a first
// install renames it over the (missing) base and then records it as the
// root; a re-bootstrap first removes the old chain's segments, which are
// only a cache of downloaded files, so none of them can be mistaken for a
// continuation of the new chain.
func (r *Replica) Install(s *Staged) error {
	if r.base == nil {
		return r.installFirst(s)
	}
	if err := r.removeSegments(); err != nil {
		return fmt.Errorf("install snapshot: %w", err)
	}
	st := r.state
	st.Staged = s.snapshot()
	if err := writeState(r.path, &st); err != nil {
		return fmt.Errorf("install snapshot: %w", err)
	}
	hook("install:state")
	r.state = st
	seg, err := openStaged(st.Staged)
	if err != nil {
		return fmt.Errorf("install snapshot: %w", err)
	}
	r.publish(r.newVersion(seg))
	hook("install:done")
	return nil
}

func (r *Replica) installFirst(s *Staged) error {
	counter := r.nextCounter()
	m := s.Meta
	root := &Version{TXID: m.MaxTXID, PageSize: m.PageSize, Commit: m.Commit, Counter: counter}
	if err := patchFileHeader(s.path, root); err != nil {
		return fmt.Errorf("install snapshot: %w", err)
	}
	r.state = State{Source: r.state.Source, Counter: counter, Staged: s.snapshot()}
	if err := writeState(r.path, &r.state); err != nil {
		return fmt.Errorf("install snapshot: %w", err)
	}
	hook("install:state")
	if err := r.finishFirstInstall(); err != nil {
		return fmt.Errorf("install snapshot: %w", err)
	}
	if err := r.loadBase(); err != nil {
		return err
	}
	hook("install:done")
	return nil
}

// finishFirstInstall renames the staged snapshot over the base file (unless
// a crash came after the rename) and records it as the root. Idempotent.
func (r *Replica) finishFirstInstall() error {
	s := r.state.Staged
	if ok, err := fileExists(s.Path); err != nil {
		return err
	} else if ok {
		if err := os.Rename(s.Path, r.path); err != nil {
			return err
		}
		hook("install:renamed")
		if err := syncDir(filepath.Dir(r.path)); err != nil {
			return err
		}
	} else if ok, err := fileExists(r.path); err != nil || !ok {
		return err // neither file: the caller starts over
	}
	r.state = State{
		Source: r.state.Source, TXID: s.TXID, Timestamp: s.Timestamp, Checksum: s.Checksum,
		PageSize: s.PageSize, Commit: s.Commit, Counter: max(r.state.Counter, r.counter), Page1Checksum: s.Page1Checksum,
	}
	return writeState(r.path, &r.state)
}

// openStaged opens a staged snapshot as a full segment.
func openStaged(s *StagedSnapshot) (*segment, error) {
	f, err := os.Open(s.Path)
	if err != nil {
		return nil, fmt.Errorf("open staged snapshot: %w", err)
	}
	return &segment{path: s.Path, f: f, full: true, meta: segmentMeta{
		MinTXID: 1, MaxTXID: s.TXID, PageSize: s.PageSize, Commit: s.Commit,
		Timestamp: s.Timestamp.UnixMilli(), Checksum: s.Checksum, Page1Checksum: s.Page1Checksum,
	}}, nil
}

// removeSegments deletes every segment file; readers that still read one
// keep its descriptor.
func (r *Replica) removeSegments() error {
	paths, err := listSegments(r.logDir)
	if err != nil {
		return err
	}
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
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
