package follow

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/store"
)

// Planning a point in time: which files build the database as of a TXID,
// a time, or the newest TXID. It uses the follower's catalog and chainFrom:
// overlapping files are allowed, so a greedy chain that never takes a file
// ending past the target reaches the target exactly when any chain does.

// planPoint is the plan that builds the database as of at.
func planPoint(ctx context.Context, st store.Reader, cat *catalog, at Point) (plan, error) {
	switch {
	case at.TXID != 0:
		return planTXID(ctx, st, cat, at.TXID)
	case !at.Time.IsZero():
		return planTime(ctx, st, cat, at.Time)
	default:
		return planNewest(cat)
	}
}

// bases are the files a build can start from, oldest first: the snapshots,
// and any file of levels 0-8 that starts at TXID 1 (Litestream's first L0
// file holds the whole database, and so do compactions of it; its restore
// starts from them when no snapshot qualifies). Each holds every page.
func (c *catalog) bases() []store.FileInfo {
	bs := slices.Clone(c.snapshots)
	for _, f := range c.files {
		if f.MinTXID == 1 {
			bs = append(bs, f)
		}
	}
	slices.SortStableFunc(bs, func(a, b store.FileInfo) int {
		return cmp.Or(cmp.Compare(a.MaxTXID, b.MaxTXID), cmp.Compare(b.Level, a.Level))
	})
	return bs
}

// planFrom is the plan that starts from base and chains through the files
// skip allows.
func (c *catalog) planFrom(base store.FileInfo, skip func(store.FileInfo) bool) plan {
	p := c.chainFrom(base.MaxTXID, skip)
	p.snapshot = &base
	return p
}

// endingPast skips the files that end past txid.
func endingPast(txid ltx.TXID) func(store.FileInfo) bool {
	return func(f store.FileInfo) bool { return f.MaxTXID > txid }
}

// planNewest is the plan to the store's newest TXID. A store whose files do
// not all connect is refused (Litestream's restore refuses it too,
// "non-contiguous ltx files"), naming the newest TXID that can be built.
func planNewest(cat *catalog) (plan, error) {
	bs := cat.bases()
	if len(bs) == 0 {
		return plan{}, errNoSnapshot
	}
	p := cat.planFrom(bs[len(bs)-1], nil)
	if p.reach < cat.head {
		return plan{}, fmt.Errorf("no chain of files reaches the store's newest TXID %d (a gap after TXID %d); TXID %d is the newest that can be built",
			uint64(cat.head), uint64(p.reach), uint64(p.reach))
	}
	return p, nil
}

// planTXID is the plan to txid exactly: from the newest base at or before
// it (a later start never reaches less far), through files that end at or
// before it.
func planTXID(ctx context.Context, st store.Reader, cat *catalog, txid ltx.TXID) (plan, error) {
	if txid > cat.head {
		return plan{}, fmt.Errorf("TXID %d is past the store's newest, TXID %d", uint64(txid), uint64(cat.head))
	}
	bs := cat.bases()
	if len(bs) == 0 {
		return plan{}, errNoSnapshot
	}
	i := sort.Search(len(bs), func(i int) bool { return bs[i].MaxTXID > txid })
	if i == 0 {
		return plan{}, fmt.Errorf("TXID %d is older than anything the store still holds: the oldest point it can build is %s",
			uint64(txid), describePoint(ctx, st, bs[0]))
	}
	p := cat.planFrom(bs[i-1], endingPast(txid))
	if p.reach == txid {
		return p, nil
	}
	msg := fmt.Sprintf("TXID %d cannot be built exactly: no chain of files in the store ends there (its level-0 file is gone, and compactions hold it only within longer ranges); the nearest TXIDs that can be built are %d below it",
		uint64(txid), uint64(p.reach))
	if above := cat.nearestAbove(bs, p.reach, txid); above != 0 {
		msg += fmt.Sprintf(" and %d above it", uint64(above))
	} else {
		msg += ", and none above it"
	}
	return plan{}, fmt.Errorf("%s", msg)
}

// nearestAbove is the lowest TXID past txid that a build can reach, when
// reach is the furthest it gets without passing txid: every chain past
// txid leaves reach (or a TXID before it) by a file that starts at or
// before reach+1, or starts from a base past txid. 0 if there is none.
func (c *catalog) nearestAbove(bases []store.FileInfo, reach, txid ltx.TXID) ltx.TXID {
	var above ltx.TXID
	take := func(t ltx.TXID) {
		if t > txid && (above == 0 || t < above) {
			above = t
		}
	}
	for _, f := range c.files {
		if f.MinTXID <= reach+1 {
			take(f.MaxTXID)
		}
	}
	for _, b := range bases {
		take(b.MaxTXID)
	}
	return above
}

// planTime is the plan to the database as of t, as Litestream v0.5.18's
// `litestream restore -timestamp t` picks it (replica.go CalcRestorePlan
// and restoreLevelCursor.refresh): a file may be used only if its
// CreatedAt is strictly before t; the restore starts from the newest such
// snapshot and chains through such files of levels 0-8 as far as they
// reach. CreatedAt is the LTX header's Timestamp: the S3 client reads it
// back from the object's litestream-timestamp metadata (a timestamp
// restore asks for it), the file client from the file's mtime, which it
// sets to the header's Timestamp (file/replica_client.go WriteLTXFile);
// only an S3 object without that metadata falls back to LastModified.
// For an L0 file it is when Litestream wrote the transaction, for a
// compaction that of its last transaction (ltx.Compactor), for a snapshot
// when the snapshot was taken. walrust reads the same Timestamp from the
// headers, never the store's ModTime.
//
// One difference: Litestream refuses a time after the newest file's
// ("timestamp does not exist"); here it builds the newest TXID, which is
// the database as of that time as far as the store knows.
//
// Within a level, timestamps grow with the TXIDs (each file is written
// after the ones before it), so the files before t are a prefix of the
// level, found by a binary search: at most log2(files)+1 headers read per
// level. A header read here only steers the choice; every file applied is
// verified whole, as always.
func planTime(ctx context.Context, st store.Reader, cat *catalog, t time.Time) (plan, error) {
	stamps := newStamps(ctx, st)
	before := make(map[store.FileKey]bool)
	levels := make(map[int][]store.FileInfo)
	for _, f := range cat.files {
		levels[f.Level] = append(levels[f.Level], f)
	}
	levels[store.SnapshotLevel] = cat.snapshots
	for _, files := range levels {
		files = slices.Clone(files)
		slices.SortStableFunc(files, func(a, b store.FileInfo) int { return cmp.Compare(a.MaxTXID, b.MaxTXID) })
		n, err := stamps.prefixBefore(files, t)
		if err != nil {
			return plan{}, err
		}
		for _, f := range files[:n] {
			before[f.Key()] = true
		}
	}
	bs := cat.bases()
	var base *store.FileInfo
	for i := range bs {
		if before[bs[i].Key()] {
			base = &bs[i] // the newest one wins: bs is oldest first
		}
	}
	if base == nil {
		if len(bs) == 0 {
			return plan{}, errNoSnapshot
		}
		oldest, err := stamps.earliest(bs)
		if err != nil {
			return plan{}, err
		}
		return plan{}, fmt.Errorf("%s is older than anything the store still holds: the oldest point it can build is %s (give a later time)",
			t.Format(time.RFC3339Nano), describeStamped(oldest, stamps.cache[oldest.Key()]))
	}
	return cat.planFrom(*base, func(f store.FileInfo) bool { return !before[f.Key()] }), nil
}

// maxStampReads bounds the headers one plan reads, whatever the listing.
const maxStampReads = 400

// stamps reads the Timestamp of LTX headers: the first bytes of a file
// only, each read once, bounded in time and in number.
type stamps struct {
	ctx   context.Context
	st    store.Reader
	cache map[store.FileKey]time.Time
	reads int
}

func newStamps(ctx context.Context, st store.Reader) *stamps {
	return &stamps{ctx: ctx, st: st, cache: make(map[store.FileKey]time.Time)}
}

// prefixBefore is how many of files (sorted by MaxTXID) were written
// before t.
func (s *stamps) prefixBefore(files []store.FileInfo, t time.Time) (int, error) {
	var err error
	n := sort.Search(len(files), func(i int) bool {
		if err != nil {
			return true
		}
		var ts time.Time
		ts, err = s.of(files[i])
		return !ts.Before(t)
	})
	return n, err
}

// earliest is the file of files written first.
func (s *stamps) earliest(files []store.FileInfo) (store.FileInfo, error) {
	// The first base of each level is its oldest; levels are few.
	seen := make(map[int]bool)
	var first store.FileInfo
	var firstAt time.Time
	for _, f := range files {
		if seen[f.Level] {
			continue
		}
		seen[f.Level] = true
		ts, err := s.of(f)
		if err != nil {
			return store.FileInfo{}, err
		}
		if firstAt.IsZero() || ts.Before(firstAt) {
			first, firstAt = f, ts
		}
	}
	return first, nil
}

// of is the Timestamp in fi's header.
func (s *stamps) of(fi store.FileInfo) (time.Time, error) {
	if ts, ok := s.cache[fi.Key()]; ok {
		return ts, nil
	}
	if s.reads >= maxStampReads {
		return time.Time{}, fmt.Errorf("more than %d LTX headers to read to map the time to a TXID", maxStampReads)
	}
	s.reads++
	hdr, err := readHeader(s.ctx, s.st, fi)
	if err != nil {
		return time.Time{}, err
	}
	ts := time.UnixMilli(hdr.Timestamp).UTC()
	s.cache[fi.Key()] = ts
	return ts, nil
}

// readHeader reads the header of fi, and checks it against its name.
func readHeader(ctx context.Context, st store.Reader, fi store.FileInfo) (ltx.Header, error) {
	ctx, cancel := context.WithTimeout(ctx, downloadBase)
	defer cancel()
	rc, err := openHeader(ctx, st, fi)
	if err != nil {
		return ltx.Header{}, fmt.Errorf("read the header of %s: %w", fi, timedOut(ctx, err))
	}
	defer rc.Close()
	buf := make([]byte, ltx.HeaderSize)
	if _, err := io.ReadFull(rc, buf); err != nil {
		return ltx.Header{}, fmt.Errorf("read the header of %s: %w", fi, timedOut(ctx, err))
	}
	var hdr ltx.Header
	if err := hdr.UnmarshalBinary(buf); err != nil {
		return ltx.Header{}, fmt.Errorf("the header of %s: %w", fi, err)
	}
	if err := hdr.Validate(); err != nil {
		return ltx.Header{}, fmt.Errorf("the header of %s: %w", fi, err)
	}
	if hdr.MinTXID != fi.MinTXID || hdr.MaxTXID != fi.MaxTXID {
		return ltx.Header{}, fmt.Errorf("the header of %s says TXIDs %d-%d", fi, uint64(hdr.MinTXID), uint64(hdr.MaxTXID))
	}
	return hdr, nil
}

// openHeader streams the first ltx.HeaderSize bytes of fi: a ranged read
// where the store can serve one and the listing gave a size, so that
// mapping a time to a TXID (up to maxStampReads headers) does not start a
// GET of each whole file only to close it after 100 bytes; the whole file
// otherwise.
func openHeader(ctx context.Context, st store.Reader, fi store.FileInfo) (io.ReadCloser, error) {
	if _, ok := st.(store.RangeReader); !ok || fi.Size <= 0 {
		return st.Open(ctx, fi)
	}
	if fi.Size < ltx.HeaderSize {
		return nil, fmt.Errorf("%s is %d bytes, shorter than an LTX header", fi, fi.Size)
	}
	return store.OpenRange(ctx, st, fi, 0, ltx.HeaderSize)
}

// describePoint names the point that base builds: its TXID and when its
// file was written, if its header says (the error that needs it is worth
// more than a failed read).
func describePoint(ctx context.Context, st store.Reader, base store.FileInfo) string {
	hdr, err := readHeader(ctx, st, base)
	if err != nil {
		return fmt.Sprintf("TXID %d (%s)", uint64(base.MaxTXID), base)
	}
	return describeStamped(base, time.UnixMilli(hdr.Timestamp).UTC())
}

func describeStamped(base store.FileInfo, at time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "TXID %d", uint64(base.MaxTXID))
	if !at.IsZero() {
		fmt.Fprintf(&b, " at %s", at.Format(time.RFC3339Nano))
	}
	fmt.Fprintf(&b, " (%s)", base)
	return b.String()
}
