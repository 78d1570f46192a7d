package replica

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/superfly/ltx"
	"golang.org/x/sys/unix"

	"github.com/walrust/walrust/vfs/internal/crc64iso"
	"github.com/walrust/walrust/vfs/internal/durable"
	"github.com/walrust/walrust/vfs/internal/ltxguard"
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
// is removed. The stream is read ahead on a goroutine of its own (see
// prefetch), which is done with it when StageSnapshot returns.
//
// want is what the store's listing says the file is; as in Apply, errors
// that prove the snapshot bad wrap ErrCorrupt, and no other does.
func (r *Replica) StageSnapshot(ctx context.Context, rd io.Reader, want ltxguard.Want) (*Staged, error) {
	hook("stage:start")
	want.Snapshot = true
	f, err := durable.CreateTemp(r.logDir, ".snapshot-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("stage snapshot: %w", err)
	}
	pf := prefetch(rd)
	st, err := decodeSnapshot(ctx, f, pf, want)
	pf.Close() // the stream is not read after this: the caller may close it
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

// decodeSnapshot decodes a snapshot into f in two stages that run at once,
// so that writing overlaps decoding: this goroutine reads the stream,
// checks its checksums (the ltx decoder does) and decompresses pages into
// batches; a writer goroutine writes each batch.
// A fixed set of batches circulates between them, so memory stays bounded
// (snapshotBatches × ~256 KiB) whatever the database's size.
func decodeSnapshot(ctx context.Context, f *os.File, rd io.Reader, want ltxguard.Want) (*Staged, error) {
	src, err := openSnapshotSource(guarded(rd, want))
	if err != nil {
		return nil, corrupt(fmt.Errorf("decode header: %w", err))
	}
	hdr := src.header()
	if !hdr.IsSnapshot() { // the guard checks this too: an invariant, not a hope
		return nil, corrupt(fmt.Errorf("not a snapshot: TXIDs %s-%s", hdr.MinTXID, hdr.MaxTXID))
	}
	// The header has passed the guard: its size is within the maximum. Make
	// sure the disk can take it before writing any of it, so that a full
	// disk is a clear local error now, not ENOSPC half way. Its blocks are
	// allocated as the writer comes to them (snapshotWriter.allocate), not
	// by the header's claim.
	size := int64(hdr.Commit) * int64(hdr.PageSize)
	if err := checkFreeSpace(f.Name(), size); err != nil {
		return nil, err
	}
	ps := int(hdr.PageSize)
	per := max(1, snapshotBatchBytes/ps) // pages per batch
	free := make(chan *snapshotBatch, snapshotBatches)
	full := make(chan *snapshotBatch, snapshotBatches)
	for range snapshotBatches {
		free <- &snapshotBatch{buf: make([]byte, per*ps), pgnos: make([]uint32, 0, per)}
	}
	w := &snapshotWriter{f: f, ps: ps, hasher: crc64iso.New(), next: 1, size: size}
	written := make(chan error, 1)
	go func() { written <- w.run(full, free) }()

	pages, err := decodeSnapshotPages(ctx, src, hdr, per, free, full, &w.failed)
	close(full)
	if werr := <-written; werr != nil { // the writer is done with f, whatever happened
		return nil, werr
	} else if err != nil {
		return nil, err
	}
	dbSum, err := src.finish()
	if err != nil {
		return nil, corrupt(fmt.Errorf("verify snapshot: %w", err))
	}
	if pages == 0 || w.page1Sum == 0 {
		return nil, corrupt(errors.New("snapshot has no page 1"))
	}
	// The database checksum: the decoder computes it over a snapshot's
	// pages and finish has checked the trailer's against it (a snapshot
	// that lies is rejected there: TestStageSnapshotWrongChecksum), so it
	// is not computed a second time here. A snapshot without checksums (Litestream
	// writes none) leaves it unknown (0): nothing could check it. One is
	// computed when a file that carries checksums comes (see Apply).
	var sum ltx.Checksum
	if !hdr.NoChecksum() {
		sum = dbSum
	}
	if err := f.Truncate(int64(hdr.Commit) * int64(ps)); err != nil {
		return nil, fmt.Errorf("size staged: %w", err)
	}
	return &Staged{Pages: pages, Meta: segmentMeta{
		MinTXID: hdr.MinTXID, MaxTXID: hdr.MaxTXID, PageSize: hdr.PageSize, Commit: hdr.Commit,
		Timestamp: hdr.Timestamp, Checksum: sum, Page1Checksum: w.page1Sum,
	}}, nil
}

const (
	snapshotBatchBytes = 256 << 10 // decoded pages handed to the writer at once
	snapshotBatches    = 4         // batches in circulation
)

// snapshotBatch is a run of decoded pages, back to back in buf, ascending.
type snapshotBatch struct {
	buf   []byte
	pgnos []uint32
}

// decodeSnapshotPages decodes every page into batches taken from free and
// hands each full batch to the writer, checking that pages come in order
// and within the commit.
func decodeSnapshotPages(ctx context.Context, dec snapshotSource, hdr ltx.Header, per int, free <-chan *snapshotBatch, full chan<- *snapshotBatch, failed *atomic.Bool) (int, error) {
	ps := int(hdr.PageSize)
	var ph ltx.PageHeader
	pages := 0
	next := uint32(1)
	b := <-free
	for {
		if len(b.pgnos) == per {
			if failed.Load() {
				return pages, errors.New("the writer failed") // run returns why
			}
			if err := ctx.Err(); err != nil {
				return pages, err
			}
			full <- b
			b = <-free
		}
		n := len(b.pgnos)
		if err := dec.page(&ph, b.buf[n*ps:(n+1)*ps]); err == io.EOF {
			break
		} else if err != nil {
			return pages, corrupt(fmt.Errorf("decode page: %w", err))
		}
		// The guard lets through only pages 1..commit in order, the lock
		// page left out; the writer relies on it, so it is checked again.
		if ph.Pgno > hdr.Commit || ph.Pgno != next && !(ph.Pgno == next+1 && next == ltx.LockPgno(hdr.PageSize)) {
			return pages, corrupt(fmt.Errorf("snapshot page %d where page %d belongs", ph.Pgno, next))
		}
		if ph.Pgno == 1 {
			if err := checkPage1(b.buf[n*ps:(n+1)*ps], hdr.PageSize); err != nil {
				return pages, err
			}
		}
		b.pgnos = append(b.pgnos, ph.Pgno)
		next = ph.Pgno + 1
		pages++
	}
	if len(b.pgnos) > 0 {
		full <- b
	}
	return pages, nil
}

// snapshotWriter is the second stage: it writes batches to the staged file
// in order, leaving zeros for pages the snapshot does not hold (the lock
// page), and keeps page 1's checksum.
type snapshotWriter struct {
	f        *os.File
	ps       int
	hasher   hash.Hash64
	next     uint32 // page number at the file's current write offset
	page1Sum ltx.Checksum
	flushed  int64       // bytes handed to startWriteback so far
	failed   atomic.Bool // set once a write has failed: the decoder stops
	size     int64       // the file's size: commit × page size
	alloc    int64       // bytes fallocated so far
}

// allocAhead is how far ahead of what it writes the writer allocates the
// staged file's blocks. Writing into allocated blocks costs the kernel
// less than allocating them write by write (with delayed allocation the
// writes took half of a bootstrap's time); allocating the whole commit ×
// page size at once, as soon as the header was in, let a hostile store
// take as much disk as its header claimed (all the free space) for as
// long as it stalled the download, with one page sent
// (TestStageSnapshotAllocatesByClaim).
const allocAhead = 64 << 20

// allocate makes sure the file's blocks up to end (and allocAhead past
// it, within the file's size) are allocated. Only a full disk is an
// error: where fallocate fails otherwise (a file system without it), the
// writes allocate as they go, and report their own errors.
func (w *snapshotWriter) allocate(end int64) error {
	if end <= w.alloc || w.alloc >= w.size {
		return nil
	}
	to := min(w.size, end+allocAhead)
	if err := unix.Fallocate(int(w.f.Fd()), 0, w.alloc, to-w.alloc); errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) {
		return fmt.Errorf("allocate %d bytes for the snapshot: %w", to-w.alloc, err)
	}
	w.alloc = to
	return nil
}

// run writes every batch it receives until full is closed, and gives each
// back. After an error it only gives batches back, so the decoder never
// blocks.
func (w *snapshotWriter) run(full <-chan *snapshotBatch, free chan<- *snapshotBatch) error {
	var err error
	for b := range full {
		if err == nil {
			if err = w.write(b); err != nil {
				w.failed.Store(true)
			}
		}
		b.pgnos = b.pgnos[:0]
		free <- b
	}
	return err
}

func (w *snapshotWriter) write(b *snapshotBatch) error {
	ps := w.ps
	if n := len(b.pgnos); n > 0 {
		if err := w.allocate(int64(b.pgnos[n-1]) * int64(ps)); err != nil {
			return err
		}
	}
	start := 0 // first page of the run not written yet
	for i, pgno := range b.pgnos {
		page := b.buf[i*ps : (i+1)*ps]
		if pgno == 1 {
			w.page1Sum = ltx.ChecksumPageWithHasher(w.hasher, pgno, page)
		}
		if pgno > w.next { // the lock page is not stored: leave zeros
			if _, err := w.f.Write(b.buf[start*ps : i*ps]); err != nil {
				return fmt.Errorf("write staged: %w", err)
			}
			zero := make([]byte, ps)
			for ; w.next < pgno; w.next++ {
				if _, err := w.f.Write(zero); err != nil {
					return fmt.Errorf("write staged: %w", err)
				}
			}
			start = i
		}
		w.next = pgno + 1
	}
	if _, err := w.f.Write(b.buf[start*ps : len(b.pgnos)*ps]); err != nil {
		return fmt.Errorf("write staged: %w", err)
	}
	// Start writing what is written to disk now, while the rest decodes,
	// so that the fsync before the rename has little left to wait for.
	if end := int64(w.next-1) * int64(ps); end-w.flushed >= writebackBytes {
		startWriteback(w.f, w.flushed, end-w.flushed)
		w.flushed = end
	}
	return nil
}

// writebackBytes is how much a bootstrap writes before it asks the kernel
// to start writing it to disk.
const writebackBytes = 8 << 20

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
	header, err := patchFileHeader(s.path, root)
	if err != nil {
		return fmt.Errorf("install snapshot: %w", err)
	}
	r.state = State{Origin: r.state.Origin, Counter: counter, Staged: s.snapshot()}
	r.state.Staged.Page1Header = header
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
		if err := durable.SyncDir(filepath.Dir(r.path)); err != nil {
			return err
		}
	} else if ok, err := fileExists(r.path); err != nil || !ok {
		return err // neither file: the caller starts over
	}
	r.state = State{
		Origin: r.state.Origin, TXID: s.TXID, Timestamp: s.Timestamp, Checksum: s.Checksum,
		PageSize: s.PageSize, Commit: s.Commit, Counter: max(r.state.Counter, r.counter), Page1Checksum: s.Page1Checksum,
		Page1Header: s.Page1Header,
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
	r.log.forget()
	return nil
}

// patchFileHeader writes the served form of page 1's header into a database
// file and syncs it. It returns the header the file had: the primary's.
func patchFileHeader(path string, v *Version) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var hdr [headerSize]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	orig := slices.Clone(hdr[:])
	v.patchHeader(hdr[:], 0)
	if _, err := f.WriteAt(hdr[:], 0); err != nil {
		return nil, fmt.Errorf("write header: %w", err)
	}
	return orig, f.Sync()
}
