package publish

import (
	"bytes"
	"database/sql"
	"encoding/binary"
	"os"
	"testing"
)

// TestScanWAL checks the WAL reader against SQLite's own log: the database
// file overlaid with the scanned pages is, byte for byte, what a
// checkpoint then writes; the end of a scan is where the next one starts;
// and a torn frame ends the scan at the commit before it.
func TestScanWAL(t *testing.T) {
	p := newPrimary(t, "wal", 4096)
	p.exec("PRAGMA wal_autocheckpoint=0")
	// A reader that stays open keeps SQLite from restarting the log.
	reader, err := sql.Open("sqlite3", "file:"+p.path)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	p.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, body TEXT)")
	insertRows(t, p, 0, 50, 300)

	wal, err := openWAL(p.path)
	if err != nil {
		t.Fatal(err)
	}
	defer wal.Close()
	h, err := readWALHeader(wal)
	if err != nil {
		t.Fatal(err)
	}
	first, err := scanWAL(wal, h, 0, h.Sum)
	if err != nil {
		t.Fatal(err)
	}
	if first.Commit == 0 || len(first.Pages) == 0 {
		t.Fatalf("scan found nothing: %+v", first)
	}
	if ok, err := frameMatches(wal, h, first.Frames, first.Sum); err != nil || !ok {
		t.Fatalf("the scan's last frame does not match: %v", err)
	}

	insertRows(t, p, 50, 50, 300)
	p.exec("DELETE FROM t WHERE id % 3 = 0")
	next, err := scanWAL(wal, h, first.Frames, first.Sum)
	if err != nil {
		t.Fatal(err)
	}
	if next.Frames <= first.Frames {
		t.Fatalf("second scan ended at frame %d, first at %d", next.Frames, first.Frames)
	}
	all, err := scanWAL(wal, h, 0, h.Sum)
	if err != nil {
		t.Fatal(err)
	}
	if all.Frames != next.Frames || all.Sum != next.Sum || all.Commit != next.Commit {
		t.Fatalf("scan in two steps ends at %d/%v, in one at %d/%v", next.Frames, next.Sum, all.Frames, all.Sum)
	}

	// The database file with the log's pages on top is the database.
	db, err := os.ReadFile(p.path)
	if err != nil {
		t.Fatal(err)
	}
	img := make([]byte, int(all.Commit)*4096)
	copy(img, db)
	page := make([]byte, 4096)
	for pgno, off := range all.Pages {
		if pgno > all.Commit {
			continue
		}
		if _, err := wal.ReadAt(page, off); err != nil {
			t.Fatal(err)
		}
		copy(img[int(pgno-1)*4096:], page)
	}

	// A torn last frame: the scan stops at the commit before it.
	fi, _ := wal.Stat()
	torn, err := os.ReadFile(p.path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	torn[fi.Size()-100] ^= 0xff
	cut, err := scanWAL(bytes.NewReader(torn), h, 0, h.Sum)
	if err != nil {
		t.Fatal(err)
	}
	if cut.Frames >= all.Frames || cut.Frames == 0 {
		t.Fatalf("torn log: scan ended at frame %d of %d", cut.Frames, all.Frames)
	}

	reader.Close()
	p.checkpoint()
	after, err := os.ReadFile(p.path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(after, img) {
		t.Fatalf("database file plus log pages (%d bytes) differs from the checkpointed file (%d bytes)", len(img), len(after))
	}
}

// TestScanWALBigEndian: a log written on a big-endian machine (magic
// 0x377f0683) sums big-endian words. The same log, re-summed that way,
// scans to the same frames and pages; one whose frames keep the
// little-endian sums under the big-endian magic ends at its first frame.
func TestScanWALBigEndian(t *testing.T) {
	p := newPrimary(t, "wal", 4096)
	p.exec("PRAGMA wal_autocheckpoint=0")
	p.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, body TEXT)")
	insertRows(t, p, 0, 30, 500)
	insertRows(t, p, 30, 30, 500)
	le, err := os.ReadFile(p.path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	h, err := readWALHeader(bytes.NewReader(le))
	if err != nil || h.BigEndian {
		t.Fatalf("header %+v, %v", h, err)
	}
	want, err := scanWAL(bytes.NewReader(le), h, 0, h.Sum)
	if err != nil || want.Commit == 0 {
		t.Fatalf("scan %+v, %v", want, err)
	}

	be := bytes.Clone(le)
	binary.BigEndian.PutUint32(be[0:], walMagicBE)
	stale := bytes.Clone(be) // big-endian magic, little-endian sums
	sum := walChecksum(true, walSum{}, be[:24])
	binary.BigEndian.PutUint32(be[24:], sum[0])
	binary.BigEndian.PutUint32(be[28:], sum[1])
	copy(stale[24:32], be[24:32])
	frameSize := int(walFrameHeaderSize + h.PageSize)
	for off := walHeaderSize; off+frameSize <= len(be) && off < walHeaderSize+int(want.Frames)*frameSize; off += frameSize {
		sum = walChecksum(true, sum, be[off:off+8])
		sum = walChecksum(true, sum, be[off+walFrameHeaderSize:off+frameSize])
		binary.BigEndian.PutUint32(be[off+16:], sum[0])
		binary.BigEndian.PutUint32(be[off+20:], sum[1])
	}
	hb, err := readWALHeader(bytes.NewReader(be))
	if err != nil || !hb.BigEndian {
		t.Fatalf("big-endian header %+v, %v", hb, err)
	}
	got, err := scanWAL(bytes.NewReader(be), hb, 0, hb.Sum)
	if err != nil {
		t.Fatal(err)
	}
	if got.Frames != want.Frames || got.Commit != want.Commit || len(got.Pages) != len(want.Pages) {
		t.Fatalf("big-endian scan %d frames, commit %d, %d pages; little-endian %d, %d, %d",
			got.Frames, got.Commit, len(got.Pages), want.Frames, want.Commit, len(want.Pages))
	}
	bad, err := scanWAL(bytes.NewReader(stale), hb, 0, hb.Sum)
	if err != nil || bad.Frames != 0 || bad.Commit != 0 {
		t.Fatalf("little-endian sums under the big-endian magic scanned to frame %d: %v", bad.Frames, err)
	}
}
