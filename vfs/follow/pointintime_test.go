package follow

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/replica"
	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/ltxtest"
	"github.com/walrust/walrust/vfs/testkit/worldtest"
)

// pitT0 is the time the point-in-time worlds start at: TXID k is committed
// at pitT0 + k seconds.
var pitT0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func at(sec float64) time.Time { return pitT0.Add(time.Duration(sec * float64(time.Second))) }

// putAt publishes the file from minTXID to maxTXID at level, its header
// written at ts.
func putAt(w *world, level int, minTXID, maxTXID ltx.TXID, ts time.Time) store.FileInfo {
	w.T.Helper()
	return w.Put(level, ltxtest.Encode(w.T, w.Image(minTXID-1), w.Image(maxTXID), w.Pub.PageSize, minTXID, maxTXID,
		w.Sum(minTXID-1), w.Pub.NoChecksum, ts))
}

// pitWorld is a store as Litestream leaves it after compaction and L0
// retention:
//
//	L9  1-1 (written at 1s)         1-7 (written at 7.5s)
//	L1  2-5 (5s)  6-9 (9s)
//	L0  10 (10s)  11 (11s)  12 (12s)
//
// the L0 files of TXIDs 2-9 are gone.
func pitWorld(t *testing.T) *world {
	w := newWorld(t, 1024, false)
	putAt(w, store.SnapshotLevel, 1, 1, at(1))
	for txid := ltx.TXID(2); txid <= 12; txid++ {
		w.InsertRows(2, 150)
		w.AdvanceRef()
		if txid >= 10 {
			putAt(w, 0, txid, txid, at(float64(txid)))
		}
	}
	putAt(w, 1, 2, 5, at(5))
	putAt(w, 1, 6, 9, at(9))
	putAt(w, store.SnapshotLevel, 1, 7, at(7.5))
	return w
}

var pitSeq int

// buildAt builds a new replica of w's store as of p; the test closes it.
func (w *world) buildAt(p Point) (*replica.Replica, string, error) {
	w.T.Helper()
	pitSeq++
	path := filepath.Join(w.Dir, fmt.Sprintf("pit-%d.db", pitSeq))
	r, err := BuildAt(context.Background(), w.Store, path, p, BuildOptions{})
	if err == nil {
		w.T.Cleanup(func() { r.Close() })
	}
	return r, path, err
}

// mustBuildAt builds as of p and checks that the replica holds the image
// of txid, committed when its header says.
func (w *world) mustBuildAt(p Point, txid ltx.TXID) *replica.Replica {
	w.T.Helper()
	r, _, err := w.buildAt(p)
	if err != nil {
		w.T.Fatalf("build as of %s: %v", p, err)
	}
	w.checkHead(r, txid, "as of "+p.String())
	return r
}

func TestBuildAtTXID(t *testing.T) {
	w := pitWorld(t)
	for _, c := range []struct {
		txid ltx.TXID
		why  string
	}{
		{1, "the first snapshot alone"},
		{7, "the second snapshot alone"},
		{5, "a compaction, at its MaxTXID, on the first snapshot"},
		{9, "a compaction, at its MaxTXID, on the second snapshot"},
		{11, "the second snapshot, a compaction, then L0"},
		{12, "the head"},
	} {
		r := w.mustBuildAt(Point{TXID: c.txid}, c.txid)
		if h := r.Head(); h.Timestamp.IsZero() {
			t.Errorf("TXID %d (%s): no commit time", c.txid, c.why)
		}
	}
	// The newest, when no point is given.
	w.mustBuildAt(Point{}, 12)
	// The header's time is the point's commit time.
	if h := w.mustBuildAt(Point{TXID: 11}, 11).Head(); !h.Timestamp.Equal(at(11)) {
		t.Errorf("TXID 11: commit time %s, want %s", h.Timestamp, at(11))
	}
	// The hex form of file names.
	p, err := ParsePoint("000000000000000b")
	if err != nil || p.TXID != 11 {
		t.Fatalf("ParsePoint(hex 11) = %+v, %v", p, err)
	}
	w.mustBuildAt(p, 11)
}

func TestBuildAtTXIDUnreachable(t *testing.T) {
	w := pitWorld(t)
	for _, c := range []struct {
		txid ltx.TXID
		want []string
	}{
		// Only inside compactions: the nearest points below and above.
		{4, []string{"TXID 4 cannot be built exactly", "1 below", "5 above"}},
		{8, []string{"TXID 8 cannot be built exactly", "7 below", "9 above"}},
		{3, []string{"1 below", "5 above"}},
		// Past the head: the head.
		{13, []string{"TXID 13 is past the store's newest, TXID 12"}},
	} {
		_, path, err := w.buildAt(Point{TXID: c.txid})
		if err == nil {
			t.Fatalf("TXID %d: built", c.txid)
		}
		for _, s := range c.want {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("TXID %d: %v; want it to say %q", c.txid, err, s)
			}
		}
		for _, f := range builtFiles(path) {
			if _, serr := os.Lstat(f); serr == nil {
				t.Errorf("TXID %d: %s left behind", c.txid, f)
			}
		}
	}
}

// TestBuildAtTooOld: the store's oldest snapshot is at TXID 5; a point
// before it names TXID 5 and when it was written.
func TestBuildAtTooOld(t *testing.T) {
	w := newWorld(t, 1024, false)
	for range 7 {
		w.InsertRows(1, 100)
		w.AdvanceRef() // 2..8
	}
	putAt(w, store.SnapshotLevel, 1, 5, at(5.5))
	for txid := ltx.TXID(6); txid <= 8; txid++ {
		putAt(w, 0, txid, txid, at(float64(txid)))
	}
	_, _, err := w.buildAt(Point{TXID: 3})
	if err == nil || !strings.Contains(err.Error(), "older than anything") || !strings.Contains(err.Error(), "TXID 5 at "+at(5.5).Format(time.RFC3339Nano)) {
		t.Fatalf("TXID 3: %v; want an error naming TXID 5 and its time", err)
	}
	_, _, err = w.buildAt(Point{Time: at(5.2)})
	if err == nil || !strings.Contains(err.Error(), "older than anything") || !strings.Contains(err.Error(), "TXID 5 at "+at(5.5).Format(time.RFC3339Nano)) {
		t.Fatalf("5.2s: %v; want an error naming TXID 5 and its time", err)
	}
	w.mustBuildAt(Point{TXID: 5}, 5)
	w.mustBuildAt(Point{Time: at(7.5)}, 7)
}

// TestBuildAtTime: a time picks the files whose header Timestamp is
// strictly before it, as litestream restore -timestamp does, which is not
// always the last TXID committed before it: a snapshot counts from when
// it was taken, and L0 files that are gone cannot be used.
func TestBuildAtTime(t *testing.T) {
	w := pitWorld(t)
	for _, c := range []struct {
		sec  float64
		txid ltx.TXID
	}{
		{1.001, 1},   // the first snapshot, a millisecond after it was written
		{4.9, 1},     // TXIDs 2-4 are only inside 2-5, written at 5s
		{5, 1},       // strictly before: 2-5 is not
		{5.001, 5},   // and now it is
		{7.2, 5},     // 7 was committed at 7s, but its L0 file is gone and the snapshot of it was written at 7.5s
		{8.5, 7},     // the second snapshot
		{10.5, 10},   // snapshot, 6-9, L0 10
		{12.001, 12}, // the head
		{3600, 12},   // long after: the newest (Litestream refuses this one)
	} {
		r := w.mustBuildAt(Point{Time: at(c.sec)}, c.txid)
		if h := r.Head(); !h.Timestamp.Before(at(c.sec)) {
			t.Errorf("%gs: TXID %d committed at %s, not before", c.sec, h.TXID, h.Timestamp)
		}
	}
	for _, sec := range []float64{0.5, 1} {
		_, _, err := w.buildAt(Point{Time: at(sec)})
		if err == nil || !strings.Contains(err.Error(), "TXID 1 at "+at(1).Format(time.RFC3339Nano)) {
			t.Errorf("%gs: %v; want an error naming the oldest point, TXID 1 at 1s", sec, err)
		}
	}
}

// TestBuildAtCorruptFile: a damaged file on the way is rejected, the build
// fails naming it, and nothing is left at the path.
func TestBuildAtCorruptFile(t *testing.T) {
	w := pitWorld(t)
	bad := worldtest.L0(11)
	data, err := os.ReadFile(w.FilePath(bad))
	if err != nil {
		t.Fatal(err)
	}
	w.WriteRaw(bad, worldtest.Flip(data, len(data)/2))
	w.mustBuildAt(Point{TXID: 10}, 10) // not on the way
	for _, p := range []Point{{TXID: 12}, {Time: at(11.5)}} {
		_, path, err := w.buildAt(p)
		if err == nil || !strings.Contains(err.Error(), bad.String()) {
			t.Fatalf("as of %s: %v; want an error naming %s", p, err, bad)
		}
		for _, f := range builtFiles(path) {
			if _, serr := os.Lstat(f); serr == nil {
				t.Errorf("as of %s: %s left behind", p, f)
			}
		}
	}
}

// TestBuildAtRefusesExisting: a point-in-time replica is never built over
// anything, not even a replica of the same store.
func TestBuildAtRefusesExisting(t *testing.T) {
	w := pitWorld(t)
	_, path, err := w.buildAt(Point{TXID: 12})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := BuildAt(context.Background(), w.Store, path, Point{TXID: 10}, BuildOptions{}); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("built over %s: %v", path, err)
	}
	if _, err := BuildAt(context.Background(), w.Store, w.Path, Point{TXID: 5, Time: at(5)}, BuildOptions{}); err == nil {
		t.Fatal("built as of a TXID and a time at once")
	}
}

func TestParsePoint(t *testing.T) {
	ts := time.Date(2025, 3, 1, 12, 0, 5, 250e6, time.FixedZone("", 3600))
	for _, c := range []struct {
		in   string
		want Point
	}{
		{"42", Point{TXID: 42}},
		{" 42 ", Point{TXID: 42}},
		{"000000000000002a", Point{TXID: 42}},
		{"000000000000002A", Point{TXID: 42}},
		{"0000000000000042", Point{TXID: 0x42}}, // 16 digits: the file names' hex
		{"18446744073709551615", Point{TXID: 1<<64 - 1}},
		{"2025-03-01T12:00:05.25+01:00", Point{Time: ts}},
	} {
		got, err := ParsePoint(c.in)
		if err != nil || got.TXID != c.want.TXID || !got.Time.Equal(c.want.Time) {
			t.Errorf("ParsePoint(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
		if back, err := ParsePoint(got.Time.Format(time.RFC3339Nano)); !got.Time.IsZero() && (err != nil || !back.Time.Equal(got.Time)) {
			t.Errorf("ParsePoint(%q) = %+v, %v: the time does not read back", c.in, back, err)
		}
	}
	for _, in := range []string{"", "abc", "0", "-1", "0x2a", "18446744073709551616", "2025-03-01", "2025-03-01 12:00:05", "00000000000000zz", "1.5",
		// The zero time, which would read as the zero Point: the newest TXID.
		"0001-01-01T00:00:00Z", "0001-01-01T01:00:00+01:00"} {
		if p, err := ParsePoint(in); err == nil {
			t.Errorf("ParsePoint(%q) = %+v; want an error", in, p)
		} else if !strings.HasPrefix(err.Error(), "as_of ") {
			t.Errorf("ParsePoint(%q): %v; want it to name as_of", in, err)
		}
	}
	_, err := ParsePoint("abc")
	if want := `as_of "abc": want a TXID (decimal, or 16 hex digits) or an RFC 3339 time`; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("ParsePoint(abc): %v; want %q", err, want)
	}
}

// TestBuildAtFromFirstFile: a store with no snapshot yet, as Litestream's
// is before its first snapshot interval: its first L0 file (and any
// compaction from TXID 1) holds the whole database, and litestream
// restore starts from it; so does BuildAt.
func TestBuildAtFromFirstFile(t *testing.T) {
	w := newWorld(t, 1024, true)
	for txid := ltx.TXID(2); txid <= 4; txid++ {
		w.InsertRows(2, 150)
		w.AdvanceRef()
	}
	for txid := ltx.TXID(1); txid <= 4; txid++ {
		putAt(w, 0, txid, txid, at(float64(txid)))
	}
	putAt(w, 1, 1, 3, at(3))
	w.Remove(worldtest.L0(1))
	w.Remove(worldtest.L0(2))
	w.mustBuildAt(Point{TXID: 3}, 3)
	w.mustBuildAt(Point{TXID: 4}, 4)
	w.mustBuildAt(Point{Time: at(3.5)}, 3)
	w.mustBuildAt(Point{}, 4)
	if _, _, err := w.buildAt(Point{TXID: 2}); err == nil || !strings.Contains(err.Error(), "older than anything") || !strings.Contains(err.Error(), "TXID 3 at "+at(3).Format(time.RFC3339Nano)) {
		t.Fatalf("TXID 2: %v; want an error naming TXID 3, the oldest point", err)
	}
}

// headerStore is a FileStore that counts whole-file opens and records the
// ranges asked of it.
type headerStore struct {
	*store.FileStore
	opens  int
	ranges [][2]int64
}

func (h *headerStore) Open(ctx context.Context, fi store.FileInfo) (io.ReadCloser, error) {
	h.opens++
	return h.FileStore.Open(ctx, fi)
}

func (h *headerStore) OpenRange(ctx context.Context, fi store.FileInfo, off, n int64) (io.ReadCloser, error) {
	h.ranges = append(h.ranges, [2]int64{off, n})
	return h.FileStore.OpenRange(ctx, fi, off, n)
}

// wholeOnly hides the FileStore's ranged reads.
type wholeOnly struct{ store.Reader }

// TestReadHeaderRanged: mapping a time to a TXID reads each header with a
// ranged read of its 100 bytes, not a GET of the whole file; a store
// without ranged reads still gets whole-file opens, and a listed size
// too short for a header is refused before any request.
func TestReadHeaderRanged(t *testing.T) {
	w := pitWorld(t)
	ctx := context.Background()
	fis, err := w.Store.ListAfter(ctx, 1, 0)
	if err != nil || len(fis) == 0 {
		t.Fatalf("list level 1: %v (%d files)", err, len(fis))
	}
	hs := &headerStore{FileStore: w.Store}
	for _, fi := range fis {
		hdr, err := readHeader(ctx, hs, fi)
		if err != nil || hdr.MaxTXID != fi.MaxTXID {
			t.Fatalf("%s: %v, header to TXID %d", fi, err, uint64(hdr.MaxTXID))
		}
	}
	if hs.opens != 0 || len(hs.ranges) != len(fis) {
		t.Fatalf("%d whole-file opens and %d ranges for %d headers; want 0 and %d", hs.opens, len(hs.ranges), len(fis), len(fis))
	}
	for _, r := range hs.ranges {
		if r != [2]int64{0, ltx.HeaderSize} {
			t.Errorf("range %v; want [0 %d]", r, ltx.HeaderSize)
		}
	}

	if hdr, err := readHeader(ctx, wholeOnly{w.Store}, fis[0]); err != nil || hdr.MaxTXID != fis[0].MaxTXID {
		t.Errorf("without ranged reads: %v", err)
	}

	short := fis[0]
	short.Size = ltx.HeaderSize - 1
	before := len(hs.ranges) + hs.opens
	if _, err := readHeader(ctx, hs, short); err == nil || !strings.Contains(err.Error(), "shorter than an LTX header") {
		t.Errorf("listed at %d bytes: %v; want shorter than an LTX header", short.Size, err)
	}
	if len(hs.ranges)+hs.opens != before {
		t.Errorf("a file listed too short for a header was still requested")
	}
}
