package replica

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/pierrec/lz4/v4"
	"github.com/superfly/ltx"
	"golang.org/x/sys/unix"

	"github.com/walrust/walrust/vfs/internal/ltxguard"
	"github.com/walrust/walrust/vfs/testkit/ltxtest"
)

// claimReader serves a stream's first bytes in one Read (enough for the
// prefetcher's first chunk), then, on the next Read, waits until a staged
// file in dir has been given claim bytes of blocks (or 300 ms pass), notes the most
// it saw, and ends the stream.
type claimReader struct {
	first []byte
	dir   string
	claim int64 // stop waiting once this much is allocated
	seen  int64
	done  bool
}

func (c *claimReader) Read(p []byte) (int, error) {
	if len(c.first) > 0 {
		n := copy(p, c.first)
		c.first = c.first[n:]
		return n, nil
	}
	if !c.done {
		c.done = true
		for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline) && c.seen < c.claim; time.Sleep(5 * time.Millisecond) {
			names, _ := filepath.Glob(filepath.Join(c.dir, ".snapshot-*.tmp"))
			for _, name := range names {
				var st unix.Stat_t
				if unix.Stat(name, &st) == nil {
					c.seen = max(c.seen, st.Blocks*512)
				}
			}
		}
	}
	return 0, io.EOF
}

// TestStageSnapshotAllocatesByClaim: a full bootstrap fallocates commit ×
// page size as soon as the header is in, before any page is decoded. The
// guard holds the header to the listed size, but at 266 bytes a page of
// 64 KiB (an LZ4 block of zeros): a listing of 4.4 GB passes a claim of
// 1 TiB (the default maximum), and checkFreeSpace lets it take every free
// byte of the disk. The store sends the header and stalls: the disk stays
// full for the download's budget (listed size at 1 MiB/s: over an hour),
// the other programs on the host get ENOSPC, and the next poll does it
// again (a stalled download is the store's fault, retried, never
// rejected). Here: a 256 MiB claim, 1.1 MB listed, 128 KiB sent.
func TestStageSnapshotAllocatesByClaim(t *testing.T) {
	const ps = 65536
	const commit = 4096
	hdr := ltx.Header{Version: ltx.Version, Flags: ltx.HeaderFlagNoChecksum, PageSize: ps, Commit: commit, MinTXID: 1, MaxTXID: 1, Timestamp: fuzzTime.UnixMilli()}
	head, err := hdr.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	page := make([]byte, ps)
	copy(page, sqliteMagic)
	blk := make([]byte, lz4.CompressBlockBound(ps))
	n, err := lz4.CompressBlock(page, blk, nil)
	if err != nil || n == 0 {
		t.Fatal(n, err)
	}
	first := append(head, 0, 0, 0, 1, 0, byte(ltx.PageHeaderFlagSize))
	first = binary.BigEndian.AppendUint32(first, uint32(n))
	first = append(first, blk[:n]...)
	// Then zeros: the end marker, which the guard refuses (page 1 of
	// 4096); the prefetcher's first chunk is full.
	first = append(first, make([]byte, prefetchChunkBytes-len(first))...)
	w := newWorld(t, 4096, false)
	r := w.openReplica()
	t.Cleanup(func() { r.Close() })
	size := int64(commit-1)*(ltx.PageHeaderSize+4+ps/256) + 4096
	rd := &claimReader{first: first, dir: r.logDir, claim: int64(commit) * ps}
	_, err = r.StageSnapshot(context.Background(), rd, ltxguard.Want{MinTXID: 1, MaxTXID: 1, Size: size})
	if err == nil {
		t.Fatal("a snapshot that stops after its first page: staged")
	}
	t.Logf("listed %d bytes, sent %d, claim %d: the staged file was given %d bytes (%v)", size, prefetchChunkBytes, int64(commit)*ps, rd.seen, err)
	if rd.seen > 32<<20 {
		t.Fatalf("%d MiB of disk allocated for a snapshot that sent %d KiB and one page", rd.seen>>20, prefetchChunkBytes>>10)
	}
}

// TestStageSnapshotPage1PageSize: a snapshot whose page 1 gives another
// page size (offset 16) than its LTX header is staged and installed; it
// is served, and the next Open's checkBase finds the base file's page
// size at odds with the state's, calls the replica "changed by something
// other than walrust" (ErrModified), moves the whole file aside (kept
// forever) and bootstraps again, from the same snapshot: one more copy of
// the database on disk at every restart, and a false alarm. (patchHeader
// rewrites the magic, counter and size of page 1, not its page size, so
// nothing else repairs it.) A page 1 no SQLite of this page size would
// write proves the snapshot bad: it should be refused as corrupt.
func TestStageSnapshotPage1PageSize(t *testing.T) {
	img := fuzzImage(4, 1)
	binary.BigEndian.PutUint16(img[16:], 2*fuzzPageSize) // page 1 says 1024; the LTX header 512
	snap := ltxtest.Encode(t, nil, img, fuzzPageSize, 1, 3, 0, true, fuzzTime)
	path := filepath.Join(t.TempDir(), "r.db")
	r, err := Open(path, "file:///attack")
	if err != nil {
		t.Fatal(err)
	}
	st, err := r.StageSnapshot(context.Background(), bytes.NewReader(snap), fuzzWant(snap, true))
	if errors.Is(err, ErrCorrupt) {
		r.Close()
		return // refused: what it should do
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Install(st); err != nil {
		t.Fatal(err)
	}
	r.Close()
	r, err = Open(path, "file:///attack")
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer r.Close()
	aside, _ := filepath.Glob(path + ".modified-*")
	t.Fatalf("staged and installed a snapshot whose page 1 says page size 1024 in an LTX file of 512-byte pages; reopened: %v (files moved aside: %v)", r.OpenModified(), aside)
}
