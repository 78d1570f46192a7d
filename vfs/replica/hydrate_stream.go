package replica

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc64"
	"io"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/superfly/ltx"

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

// streamTries bounds how often a broken stream is started again.
const streamTries = 20

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
// compared, not written, the second time.
func (h *Hydration) Run(ck *checkpoint) {
	err := h.run(ck)
	for try := 1; err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrServedWrong) && h.ctx.Err() == nil && try < streamTries; try++ {
		t := time.NewTimer(min(time.Second<<min(try, 5), 30*time.Second))
		select {
		case <-t.C:
		case <-h.ctx.Done():
		}
		t.Stop()
		var rerr error
		if ck, rerr = readCheckpoint(ck.path); rerr != nil {
			err = fmt.Errorf("hydrate: read checkpoint: %w", rerr)
			break
		}
		err = h.run(ck)
	}
	if err == nil {
		err = h.img.Sync() // Install renames the image: its pages must be on disk first
	}
	h.finishedErr = err
	close(h.finished)
}

func (h *Hydration) run(ck *checkpoint) error {
	crc := crc64.New(crcTable)
	if err := crc.(interface{ UnmarshalBinary([]byte) error }).UnmarshalBinary(ck.crcState); err != nil {
		return fmt.Errorf("hydrate: checkpoint: %w", err)
	}
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
	frame := make([]byte, maxFrame(uint32(h.ps)))
	batch := make([]byte, 0, streamBatch*h.ps)
	hasher := ltx.NewHasher()
	lock := ltx.LockPgno(uint32(h.ps))
	batchFirst := ck.next
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
		if err := h.writePages(batchFirst, batch, true); err != nil {
			return err
		}
		batch, batchFirst = batch[:0], pgno+1
		if d := streamDelay.Load(); d > 0 {
			time.Sleep(time.Duration(d))
		}
		if end := h.lay.offs[pgno]; end-lastCkpt >= checkpointEvery && pgno < h.commit {
			// The checkpoint says pages before next are in the image: they
			// must be on disk before it is, so the image is synced first.
			if err := h.img.Sync(); err != nil {
				return fmt.Errorf("hydrate: sync image: %w", err)
			}
			state, err := crc.(interface{ MarshalBinary() ([]byte, error) }).MarshalBinary()
			if err != nil {
				return fmt.Errorf("hydrate: checkpoint: %w", err)
			}
			ck.next, ck.crcState = pgno+1, state
			if err := ck.write(); err != nil {
				return err
			}
			hook("hydrate:checkpoint")
			lastCkpt = end
			h.streamFrom.Store(end)
		}
		if err := h.ctx.Err(); err != nil {
			return fmt.Errorf("hydrate: %w", err)
		}
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
	sum := ltx.ChecksumFlag | ltx.Checksum(crc.Sum64())
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
	h hash.Hash64
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
// crcState is the file checksum's state over every byte before next's
// frame. Layout: checkpointMagic, the snapshot it belongs to (MaxTXID,
// size, CRC of its header), next, the database checksum and page 1's
// checksum so far, page 1's original header, the CRC state, and a CRC-64
// of all of it.
type checkpoint struct {
	path        string
	txid        ltx.TXID
	size        int64
	hdrSum      uint64
	next        uint32
	dbSum       ltx.Checksum
	page1Sum    ltx.Checksum
	page1Header []byte // headerSize bytes once page 1 is streamed
	crcState    []byte
}

const checkpointMagic = "WALRHYD1"

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
	b = binary.BigEndian.AppendUint16(b, uint16(len(c.crcState)))
	b = append(b, c.crcState...)
	return binary.BigEndian.AppendUint64(b, crc64.Checksum(b, crcTable))
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
	const fixed = 8 + 8 + 8 + 8 + 4 + 8 + 8 + headerSize + 2
	if len(b) < fixed+8 || string(b[:8]) != checkpointMagic {
		return nil, errors.New("bad checkpoint")
	}
	body, sum := b[:len(b)-8], binary.BigEndian.Uint64(b[len(b)-8:])
	if crc64.Checksum(body, crcTable) != sum {
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
	n := int(binary.BigEndian.Uint16(p[44+headerSize:]))
	if len(p) != 44+headerSize+2+n {
		return nil, errors.New("bad checkpoint length")
	}
	c.crcState = slices.Clone(p[44+headerSize+2:])
	return c, nil
}
