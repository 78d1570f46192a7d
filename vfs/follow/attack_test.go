package follow

// Found by an adversarial review of the hardening: each of these failed on
// the code it was written against.

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/superfly/ltx"
	"golang.org/x/sys/unix"

	"github.com/walrust/walrust/vfs/replica"
	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/ltxtest"
	"github.com/walrust/walrust/vfs/testkit/worldtest"
)

// TestGrowthClaimRefused: an incremental LTX file of a few hundred bytes
// whose header raised the commit (within max_size) without carrying the new
// pages made the fold fallocate the whole claimed size (256 MiB here; 1 TiB
// with commit 2^31). A file that grows the database must hold every page it
// adds, and a header that calls for more pages than the file's listed size
// can hold is refused from the header.
func TestGrowthClaimRefused(t *testing.T) {
	w := newWorld(t, 512, true)
	_, f := w.bootstrapped()
	img := w.Image(1)
	const commit = 1 << 19 // 256 MiB at 512-byte pages
	data := ltxtest.Craft(w.CraftHeader(2, 2, commit), []ltxtest.CraftPage{{Pgno: 1, Data: img[:512]}}, 0)
	t.Logf("crafted file: %d bytes", len(data))
	w.WriteRaw(worldtest.L0(2), data)
	err := step(t, f)
	var st syscall.Stat_t
	if serr := syscall.Stat(w.Path, &st); serr != nil {
		t.Fatal(serr)
	}
	allocated := st.Blocks * 512
	t.Logf("step: %v; base file: size %d, allocated %d bytes", err, st.Size, allocated)
	if !errors.Is(err, replica.ErrCorrupt) || !strings.Contains(err.Error(), "cannot hold") {
		t.Fatalf("step over a file claiming %d new pages: %v; want it rejected", commit, err)
	}
	if allocated > 16<<20 {
		t.Fatalf("a %d-byte file made the replica allocate %d MiB on disk", len(data), allocated>>20)
	}
}

// TestHeldBackByOtherProcess: max_held bounds the log behind readers in
// this process by expiring them; one in another process (plain sqlite3, or
// a walrust process in the reader role, in a long transaction: SQLite's
// shared lock on the file) cannot be expired from here, and every fold
// waits for it. The follower then stops applying past max_held, says why,
// and catches up once the reader ends.
//
// The other process is an open-file-description lock on the shared range,
// which conflicts with the follower's fcntl locks as another process's
// would.
func TestHeldBackByOtherProcess(t *testing.T) {
	// SQLite's shared lock range (os_unix.c): 510 bytes from two past the
	// pending byte, 0x40000000.
	const sqliteSharedFirst, sqliteSharedSize = 0x40000000 + 2, 510
	w := newWorld(t, 1024, true)
	r, f := w.bootstrapped()
	f.maxHeld = 48 << 10
	other, err := os.Open(w.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: 0, Start: sqliteSharedFirst, Len: sqliteSharedSize}
	if err := unix.FcntlFlock(other.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
		t.Fatal(err)
	}
	var last error
	for i := 0; i < 30; i++ {
		w.InsertRows(4, 1000)
		w.Commit()
		last = step(t, f) // the fold fails busy: not an error
	}
	held := r.HeldBytes()
	t.Logf("held %d bytes behind another process's reader; max_held %d; head TXID %d", held, f.maxHeld, r.Head().TXID)
	if held > 2*f.maxHeld {
		t.Fatalf("the log holds %d bytes, more than twice max_held (%d), behind a reader in another process", held, f.maxHeld)
	}
	if last == nil || !strings.Contains(last.Error(), "a reader in another process keeps the file locked") {
		t.Fatalf("the last poll says %v; want why the replica is held back", last)
	}
	lk.Type = unix.F_UNLCK
	if err := unix.FcntlFlock(other.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5 && r.Head().TXID != w.Pub.TXID; i++ {
		step(t, f)
	}
	w.checkHead(r, w.Pub.TXID, "once the other reader ended")
	mustStep(t, f)
	w.checkBase(w.Pub.TXID, "once the other reader ended")
}

// zeroStore serves every listed file as size bytes of zeros and counts
// how many bodies were read to the end.
type zeroStore struct {
	store.Store
	mu   sync.Mutex
	done int
}

type zeroBody struct {
	io.Reader
	s    *zeroStore
	seen bool
}

func (b *zeroBody) Read(p []byte) (int, error) {
	n, err := b.Reader.Read(p)
	if err == io.EOF && !b.seen {
		b.seen = true
		b.s.mu.Lock()
		b.s.done++
		b.s.mu.Unlock()
	}
	return n, err
}
func (b *zeroBody) Close() error { return nil }

func (s *zeroStore) Open(ctx context.Context, fi store.FileInfo) (io.ReadCloser, error) {
	return &zeroBody{Reader: io.LimitReader(zeroReader{}, fi.Size), s: s}, nil
}
func (s *zeroStore) String() string { return "counting" }

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestFetchReadaheadBounded: every small file of a plan used to be
// downloaded into memory as soon as a download slot freed, whether or not
// its turn was near: while one file was applied (or a compaction streamed),
// all the others were buffered, thousands of them for a replica far
// behind. At most fetchParallel files are held ahead.
func TestFetchReadaheadBounded(t *testing.T) {
	const n, size = 64, 1 << 20
	files := make([]store.FileInfo, n)
	for i := range files {
		files[i] = store.FileInfo{Level: 0, MinTXID: ltx.TXID(i + 2), MaxTXID: ltx.TXID(i + 2), Size: size}
	}
	st := &zeroStore{}
	var buffered int
	err := fetchInOrder(context.Background(), st, files, func(fi store.FileInfo, rd io.Reader, _ *sourceReader) error {
		if fi.MinTXID == 2 {
			time.Sleep(500 * time.Millisecond) // a slow apply of the first file
			st.mu.Lock()
			buffered = st.done - 1
			st.mu.Unlock()
		}
		return errors.New("stop")
	})
	if err == nil {
		t.Fatal("no error")
	}
	t.Logf("while the first file was applied, %d files (%d MiB) were held in memory", buffered, buffered*size>>20)
	if buffered > fetchParallel {
		t.Fatalf("%d files of %d bytes downloaded into memory ahead of the one being applied; fetchParallel is %d", buffered, size, fetchParallel)
	}
}

// TestChainLinear: planning used to scan every listed file at every step
// of the chain (50,000 files: seconds per plan, 10^6: hours). It looks at
// each file once now, which the number of files it considers shows.
func TestChainLinear(t *testing.T) {
	const n = 50_000
	c := &catalog{}
	for i := 0; i < n; i++ {
		c.files = append(c.files, store.FileInfo{Level: 0, MinTXID: ltx.TXID(i + 2), MaxTXID: ltx.TXID(i + 2), Size: 100})
	}
	looked := 0
	p := c.chainFrom(1, func(store.FileInfo) bool { looked++; return false })
	if len(p.steps) != n || p.reach != n+1 {
		t.Fatalf("a chain of %d steps to TXID %d; want %d to %d", len(p.steps), p.reach, n, n+1)
	}
	if looked > 2*n {
		t.Fatalf("planning a chain through %d files looked at files %d times", n, looked)
	}
}

// TestSnapshotClaimRefused: the newest snapshot is a few hundred bytes
// that claim a database of almost 1 TiB (within the default max_size). It
// used to fail the free-space check — a local error, retried at every
// poll — so the follower never rejected it nor fell back to the good
// snapshot beside it. A snapshot's listed size bounds the pages it can
// hold: the claim is refused from its header, and the good one is used.
func TestSnapshotClaimRefused(t *testing.T) {
	w := newWorld(t, 4096, true)
	good := w.Snapshot() // TXID 1
	img := w.Image(1)
	// The primary moves on; the newest snapshot, 1-2, lies about its size.
	w.InsertRows(1, 10)
	w.Advance(w.Ref.Image())
	w.WriteRaw(store.FileInfo{Level: store.SnapshotLevel, MinTXID: 1, MaxTXID: 2},
		ltxtest.Craft(w.CraftHeader(1, 2, 1<<28-16), []ltxtest.CraftPage{{Pgno: 1, Data: img[:4096]}}, 0))
	r := w.openReplica()
	defer r.Close()
	f := w.manual(r)
	var errs []error
	for i := 0; i < 4 && r.Head() == nil; i++ {
		errs = append(errs, step(t, f))
	}
	if r.Head() == nil {
		t.Fatalf("no bootstrap after 4 polls, though %s is a good snapshot; errors: %v", good, errs)
	}
}
