package replica

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/internal/crc64iso"
	"github.com/walrust/walrust/vfs/internal/durable"
)

// checkpointEvery is how many bytes of the snapshot the stream reads
// between checkpoints (and how much a crash can make it read again).
var checkpointEvery int64 = 32 << 20

// streamDelay slows the stream down by this much a batch: tests set it
// (SetStreamDelay) to read while a small snapshot still hydrates.
var streamDelay atomic.Int64

// SetStreamDelay makes every lazy bootstrap's stream pause d after each
// batch of pages, until restore: for tests that need a hydration to take
// a while. Nothing else calls it.
func SetStreamDelay(d time.Duration) (restore func()) {
	streamDelay.Store(int64(d))
	return func() { streamDelay.Store(0) }
}

// streamTries bounds how often a stream that the store broke is started
// again. A local failure (the image or the checkpoint cannot be written: a
// full disk, EMFILE) is not the snapshot's nor the store's, and is retried
// for as long as the follower runs.
const streamTries = 20

// streamBackoff is the wait before the try-th new start (a variable: tests
// shorten it).
var streamBackoff = func(try int) time.Duration { return min(time.Second<<min(try, 5), 30*time.Second) }

// localError marks a stream's failure as local: writing the image or its
// checkpoint, or reading the checkpoint back, failed.
type localError struct{ err error }

func (e localError) Error() string { return e.err.Error() }
func (e localError) Unwrap() error { return e.err }

// streamBatch is how many pages the stream writes at once.
const streamBatch = 64

// Run streams the rest of the snapshot, from the last checkpoint to the
// end of the file, in one ranged GET, writing every page into the image
// and checkpointing as it goes, then verifies the whole file's checksum.
// It closes Finished when it returns; Err says how it ended. Run is called
// once, by the follower, on a goroutine of its own.
//
// A stream that breaks (the store's fault, not a corrupt file) starts
// again from the last checkpoint, after a backoff, up to streamTries times
// while the follower runs; the pages it wrote past the checkpoint are
// compared, not written, the second time. One that fails locally (a full
// disk) starts again for as long as the follower runs: giving up would
// abandon the snapshot, and fail its readers, for no fault of its own.
func (h *Hydration) Run(ck *checkpoint) {
	err := h.try(ck)
	for n, broken := 1, 1; err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrServedWrong) && h.ctx.Err() == nil; n++ {
		if !errors.As(err, new(localError)) {
			if broken >= streamTries {
				break
			}
			broken++
		}
		failed := err // err changes as the stream starts again
		h.retrying.Store(&failed)
		t := time.NewTimer(streamBackoff(n))
		select {
		case <-t.C:
		case <-h.ctx.Done():
		}
		t.Stop()
		next, rerr := readCheckpoint(ck.path)
		if rerr != nil {
			err = fmt.Errorf("hydrate: read checkpoint: %w", rerr)
			if !errors.As(rerr, new(*fs.PathError)) || errors.Is(rerr, fs.ErrNotExist) {
				break // gone, or not a checkpoint: no start can follow
			}
			err = localError{err} // the file system failed: try again
			continue
		}
		ck, err = next, h.try(next)
	}
	h.retrying.Store(nil)
	h.finishedErr = err
	close(h.finished)
}

// try streams from ck and syncs the image: Install renames it, so its
// pages must be on disk first.
func (h *Hydration) try(ck *checkpoint) error {
	if err := h.run(ck); err != nil {
		return err
	}
	if err := h.img.Sync(); err != nil {
		return localError{fmt.Errorf("hydrate: sync image: %w", err)}
	}
	return nil
}

// Retrying is why the stream last failed and started again, until it
// ends; nil if it has not failed.
func (h *Hydration) Retrying() error {
	if p := h.retrying.Load(); p != nil {
		return *p
	}
	return nil
}

func (h *Hydration) run(ck *checkpoint) error {
	crc := &runningCRC{v: ck.crc}
	from := h.lay.offs[ck.next-1]
	h.streamFrom.Store(from)
	rc, err := h.fetch(h.ctx, from, h.lay.size-from)
	if err != nil {
		return fmt.Errorf("hydrate: %w", err)
	}
	defer rc.Close()
	// The CRC hashes what it covers as it is consumed, not as it
	// arrives, so that its state at a checkpoint is exactly that of the
	// file before the next frame.
	br := bufio.NewReaderSize(&countedReader{r: rc, n: &h.fetched}, 1<<20)
	cr := &hashingReader{r: br, h: crc}
	w := h.startStreamWriter()
	err = h.streamPages(ck, br, crc, from, w)
	if werr := w.finish(); werr != nil {
		err = werr // the writer's is why: streamPages only saw that it failed
	}
	if err != nil {
		return err
	}
	// The end marker, then the index and trailer once more: they are in
	// the checksum, and must be the ones the layout was read from.
	var marker [endMarkerSize]byte
	if _, err := io.ReadFull(cr, marker[:]); err != nil {
		return fmt.Errorf("hydrate: read end of pages: %w", noEOF(err))
	}
	if marker != [endMarkerSize]byte{} {
		return corrupt(errors.New("the page block does not end where the index says"))
	}
	// Everything but the file checksum field (the last 8 bytes) is in the
	// checksum; the field itself is read past the CRC.
	rest := h.lay.size - h.lay.indexOff
	if err := h.lay.parseIndex(io.MultiReader(io.LimitReader(cr, rest-ltx.ChecksumSize), br)); err != nil {
		return err
	}
	sum := ltx.ChecksumFlag | ltx.Checksum(crc.v)
	if sum != h.lay.trailer.FileChecksum {
		return corrupt(fmt.Errorf("snapshot file checksum %s, not the %s its trailer says", sum, h.lay.trailer.FileChecksum))
	}
	if !h.lay.hdr.NoChecksum() && ck.dbSum != h.lay.trailer.PostApplyChecksum {
		return corrupt(fmt.Errorf("snapshot database checksum %s, not the %s its trailer says", ck.dbSum, h.lay.trailer.PostApplyChecksum))
	}
	h.verified = verifiedSnapshot{page1Sum: ck.page1Sum, page1Header: ck.page1Header}
	if !h.lay.hdr.NoChecksum() {
		h.verified.checksum = ck.dbSum
	}
	hook("hydrate:verified")
	return nil
}

// hashingReader hashes every byte read through it.
type hashingReader struct {
	r io.Reader
	h io.Writer
}

// runningCRC is the file checksum's CRC-64 so far: its whole state is its
// value, which a checkpoint keeps.
type runningCRC struct{ v uint64 }

func (c *runningCRC) Write(p []byte) (int, error) {
	c.v = crc64iso.Update(c.v, p)
	return len(p), nil
}

func (c *hashingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	return n, err
}

// countedReader adds every byte read to n.
type countedReader struct {
	r io.Reader
	n interface{ Add(int64) int64 }
}

func (c *countedReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// A checkpoint records how far the stream has come, durably: pages before
// next are in the image (synced before the checkpoint is written), and
// crc is the file checksum's CRC-64 over every byte before next's
// frame. Layout: checkpointMagic, the snapshot it belongs to (MaxTXID,
// size, CRC of its header), next, the database checksum and page 1's
// checksum so far, page 1's original header, the file checksum's CRC so
// far, and a CRC-64 of all of it.
type checkpoint struct {
	path        string
	txid        ltx.TXID
	size        int64
	hdrSum      uint64
	next        uint32
	dbSum       ltx.Checksum
	page1Sum    ltx.Checksum
	page1Header []byte // headerSize bytes once page 1 is streamed
	crc         uint64 // the file checksum's CRC-64 of every byte before next's frame
}

const checkpointMagic = "WALRHYD2"

func (c *checkpoint) encode() []byte {
	b := []byte(checkpointMagic)
	b = binary.BigEndian.AppendUint64(b, uint64(c.txid))
	b = binary.BigEndian.AppendUint64(b, uint64(c.size))
	b = binary.BigEndian.AppendUint64(b, c.hdrSum)
	b = binary.BigEndian.AppendUint32(b, c.next)
	b = binary.BigEndian.AppendUint64(b, uint64(c.dbSum))
	b = binary.BigEndian.AppendUint64(b, uint64(c.page1Sum))
	hdr := make([]byte, headerSize)
	copy(hdr, c.page1Header)
	b = append(b, hdr...)
	b = binary.BigEndian.AppendUint64(b, c.crc)
	return binary.BigEndian.AppendUint64(b, crc64iso.Update(0, b))
}

// write replaces the checkpoint file durably (durable.WriteFile: written
// aside, synced, renamed, directory synced).
func (c *checkpoint) write() error {
	if err := durable.WriteFile(c.path, c.encode()); err != nil {
		return fmt.Errorf("hydrate: write checkpoint: %w", err)
	}
	return nil
}

// readCheckpoint reads a checkpoint back; any damage reads as none.
func readCheckpoint(path string) (*checkpoint, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	const size = 8 + 8 + 8 + 8 + 4 + 8 + 8 + headerSize + 8 + 8
	if len(b) != size || string(b[:8]) != checkpointMagic {
		return nil, errors.New("bad checkpoint")
	}
	body, sum := b[:len(b)-8], binary.BigEndian.Uint64(b[len(b)-8:])
	if crc64iso.Update(0, body) != sum {
		return nil, errors.New("checkpoint checksum mismatch")
	}
	c := &checkpoint{path: path}
	p := body[8:]
	c.txid = ltx.TXID(binary.BigEndian.Uint64(p))
	c.size = int64(binary.BigEndian.Uint64(p[8:]))
	c.hdrSum = binary.BigEndian.Uint64(p[16:])
	c.next = binary.BigEndian.Uint32(p[24:])
	c.dbSum = ltx.Checksum(binary.BigEndian.Uint64(p[28:]))
	c.page1Sum = ltx.Checksum(binary.BigEndian.Uint64(p[36:]))
	c.page1Header = slices.Clone(p[44 : 44+headerSize])
	c.crc = binary.BigEndian.Uint64(p[44+headerSize:])
	return c, nil
}

// streamPages decodes and checksums the pages from ck.next on, in this
// goroutine, and hands them in batches to the writer, which writes them
// meanwhile (so decoding overlaps writing), and writes a checkpoint
// after a batch when the stream has come checkpointEvery bytes further.
func (h *Hydration) streamPages(ck *checkpoint, br io.Reader, crc *runningCRC, from int64, w *streamWriter) error {
	frame := make([]byte, maxFrame(uint32(h.ps)))
	hasher := ltx.NewHasher()
	lock := ltx.LockPgno(uint32(h.ps))
	batch, batchFirst := <-w.free, ck.next
	lastCkpt := from
	for pgno := ck.next; pgno <= h.commit; pgno++ {
		_, n := h.lay.frame(pgno)
		page := batch[len(batch) : len(batch)+h.ps]
		batch = batch[:len(batch)+h.ps]
		if n == 0 {
			clear(page) // the lock page
		} else {
			if _, err := io.ReadFull(br, frame[:n]); err != nil {
				return fmt.Errorf("hydrate: read page %d: %w", pgno, noEOF(err))
			}
			if err := decodeFrame(frame[:n], pgno, page); err != nil {
				return err
			}
			// LTX's file checksum covers a frame's page header and size
			// field, and the page decompressed (not the LZ4 block).
			crc.Write(frame[:ltx.PageHeaderSize+4])
			crc.Write(page)
		}
		if pgno != lock && !h.lay.hdr.NoChecksum() {
			ck.dbSum = ltx.ChecksumFlag | (ck.dbSum ^ ltx.ChecksumPageWithHasher(hasher, pgno, page))
		}
		if pgno == 1 {
			ck.page1Sum = ltx.ChecksumPageWithHasher(hasher, 1, page)
			ck.page1Header = slices.Clone(page[:headerSize])
		}
		if len(batch) < cap(batch) && pgno < h.commit {
			continue
		}
		b := streamWrite{first: batchFirst, pages: batch}
		if end := h.lay.offs[pgno]; end-lastCkpt >= checkpointEvery && pgno < h.commit {
			c := *ck
			c.next, c.crc, c.page1Header = pgno+1, crc.v, slices.Clone(ck.page1Header)
			b.ck, b.end = &c, end
			lastCkpt = end
		}
		if w.failed.Load() {
			return errors.New("hydrate: the writer failed") // finish says why
		}
		w.full <- b
		batch, batchFirst = (<-w.free)[:0], pgno+1
		if d := streamDelay.Load(); d > 0 {
			time.Sleep(time.Duration(d))
		}
		if err := h.ctx.Err(); err != nil {
			return fmt.Errorf("hydrate: %w", err)
		}
	}
	return nil
}

// streamWrite is a batch of decoded pages for the writer, and the
// checkpoint to write once they are on disk, if any.
type streamWrite struct {
	first uint32
	pages []byte
	ck    *checkpoint
	end   int64 // the file offset ck stands for
}

// streamWriter writes the stream's batches into the image on a goroutine
// of its own. A fixed set of buffers circulates (free → full → free), so
// memory stays at streamBuffers batches.
type streamWriter struct {
	free   chan []byte
	full   chan streamWrite
	done   chan error
	failed atomic.Bool
}

const streamBuffers = 4

func (h *Hydration) startStreamWriter() *streamWriter {
	w := &streamWriter{free: make(chan []byte, streamBuffers), full: make(chan streamWrite, streamBuffers), done: make(chan error, 1)}
	for range streamBuffers {
		w.free <- make([]byte, 0, streamBatch*h.ps)
	}
	go func() {
		var err error
		var flushed int64 // image bytes handed to startWriteback so far
		for b := range w.full {
			if err == nil {
				if err = h.writeStreamed(b, &flushed); err != nil {
					if !errors.Is(err, ErrServedWrong) {
						err = localError{err}
					}
					w.failed.Store(true)
				}
			}
			w.free <- b.pages[:0]
		}
		w.done <- err
	}()
	return w
}

// writeStreamed writes one batch, starts its writeback, and writes the
// batch's checkpoint if it has one. Ordering: the checkpoint says pages
// before its next are in the image, so they are synced before it is
// written (and startWriteback has the kernel writing them already, so the
// sync finds little left).
func (h *Hydration) writeStreamed(b streamWrite, flushed *int64) error {
	if err := h.writePages(b.first, b.pages, true); err != nil {
		return err
	}
	if end := int64(b.first-1)*int64(h.ps) + int64(len(b.pages)); end-*flushed >= writebackBytes {
		startWriteback(h.img, *flushed, end-*flushed)
		*flushed = end
	}
	if b.ck == nil {
		return nil
	}
	if err := h.img.Sync(); err != nil {
		return fmt.Errorf("hydrate: sync image: %w", err)
	}
	if err := b.ck.write(); err != nil {
		return err
	}
	hook("hydrate:checkpoint")
	h.streamFrom.Store(b.end)
	return nil
}

// finish waits for the writer to write what it was handed, and says why
// it failed, if it did.
func (w *streamWriter) finish() error {
	close(w.full)
	return <-w.done
}
