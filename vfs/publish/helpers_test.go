package publish

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	_ "github.com/mattn/go-sqlite3"
	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/ltxtest"
	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// primary is a SQLite database that tests write to, through one connection.
type primary struct {
	t    *testing.T
	path string
	db   *sql.DB
}

// newPrimary creates a database in journal mode "delete" or "wal" with the
// given page size.
func newPrimary(t *testing.T, mode string, pageSize int) *primary {
	t.Helper()
	path := filepath.Join(t.TempDir(), "primary.db")
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	p := &primary{t: t, path: path, db: db}
	p.exec(fmt.Sprintf("PRAGMA page_size=%d", pageSize))
	p.exec("PRAGMA journal_mode=" + mode)
	return p
}

func (p *primary) exec(query string, args ...any) {
	p.t.Helper()
	if _, err := p.db.Exec(query, args...); err != nil {
		p.t.Fatalf("%s: %v", query, err)
	}
}

// tx runs statements in one transaction.
func (p *primary) tx(fn func(tx *sql.Tx) error) {
	p.t.Helper()
	tx, err := p.db.Begin()
	if err != nil {
		p.t.Fatal(err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		p.t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		p.t.Fatal(err)
	}
}

// checkpoint moves a WAL primary's pages into its file, so the file shows
// what readers see. It is PASSIVE: a publisher's held read transaction
// keeps TRUNCATE from finishing, but one that began after the last commit
// lets a PASSIVE checkpoint copy every frame.
func (p *primary) checkpoint() {
	p.t.Helper()
	var mode string
	if err := p.db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		p.t.Fatal(err)
	}
	if mode == "wal" {
		var busy, log, done int
		if err := p.db.QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &log, &done); err != nil || busy != 0 || log != done {
			p.t.Fatalf("checkpoint: busy=%d log=%d checkpointed=%d %v", busy, log, done, err)
		}
	}
}

func newFileStore(t *testing.T) *store.FileStore {
	t.Helper()
	st, err := store.OpenFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// rebuild applies every file in st, TXID after TXID, to a new file and
// returns its path and position. Each TXID must be reached by exactly one
// file: a level-0 delta whose pre-apply checksum is the previous position's
// checksum, or a level-9 snapshot. Every file is verified as a whole with
// ltx.Decoder.Verify, and the rebuilt file's checksum after each file must
// be the file's post-apply checksum.
func rebuild(t *testing.T, st store.Store) (string, ltx.Pos) {
	t.Helper()
	return rebuildSince(t, st, 0)
}

// rebuildSince is rebuild starting at the snapshot that reaches TXID first
// (0: the first snapshot), ignoring the files before it.
func rebuildSince(t *testing.T, st store.Store, first ltx.TXID) (string, ltx.Pos) {
	t.Helper()
	ctx := context.Background()
	l0, err := st.ListAfter(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	l9, err := st.ListAfter(ctx, store.SnapshotLevel, 0)
	if err != nil {
		t.Fatal(err)
	}
	byTXID := map[ltx.TXID]store.FileInfo{}
	var head ltx.TXID
	for _, f := range append(l0, l9...) {
		if g, dup := byTXID[f.MaxTXID]; dup {
			// A snapshot after the first comes with a level-0 file of
			// every page at the same TXID (Publisher.announce), unless it
			// is a periodic one: the level-0 file that reached its TXID
			// came first and the snapshot repeats the state it reached.
			if g.Level != 0 || f.Level != store.SnapshotLevel {
				t.Fatalf("TXID %d is reached by both %s and %s", f.MaxTXID, g, f)
			}
			gh, gt := headerTrailerOf(t, st, g)
			_, ft := headerTrailerOf(t, st, f)
			if gh.NoChecksum() {
				checkAnnounce(t, st, g, f)
			} else if gt.PostApplyChecksum != ft.PostApplyChecksum {
				t.Fatalf("%s ends with checksum %s, %s with %s", g, gt.PostApplyChecksum, f, ft.PostApplyChecksum)
			}
		}
		byTXID[f.MaxTXID] = f
		head = max(head, f.MaxTXID)
	}
	path := filepath.Join(t.TempDir(), "rebuilt.db")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	var pos ltx.Pos
	for txid := ltx.TXID(1); txid <= head; txid++ {
		f, ok := byTXID[txid]
		if !ok {
			if pos.TXID == 0 {
				continue // before the first snapshot: not ours to check
			}
			t.Fatalf("no file reaches TXID %d", txid)
		}
		if pos.TXID == 0 && (f.Level == 0 || txid < first) {
			continue
		}
		if f.Level == 0 && f.MinTXID != f.MaxTXID {
			t.Fatalf("%s: a level-0 file spans several TXIDs", f)
		}
		pos = applyFile(t, st, f, out, pos)
	}
	if pos.TXID == 0 {
		t.Fatal("the store holds no snapshot")
	}
	return path, pos
}

// checkAnnounce checks the level-0 file published with a snapshot: no
// database checksums, and every page of the snapshot, identical.
func checkAnnounce(t *testing.T, st store.Store, l0, snap store.FileInfo) {
	t.Helper()
	pages := func(f store.FileInfo) (ltx.Header, map[uint32][]byte) {
		dec := ltx.NewDecoder(bytes.NewReader(readFile(t, st, f)))
		if err := dec.DecodeHeader(); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		hdr := dec.Header()
		m := map[uint32][]byte{}
		var ph ltx.PageHeader
		for {
			data := make([]byte, hdr.PageSize)
			if err := dec.DecodePage(&ph, data); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			m[ph.Pgno] = data
		}
		if err := dec.Close(); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		return hdr, m
	}
	ah, a := pages(l0)
	sh, s := pages(snap)
	if !ah.NoChecksum() || ah.MinTXID != ah.MaxTXID || ah.Commit != sh.Commit || ah.PageSize != sh.PageSize || len(a) != len(s) {
		t.Fatalf("%s does not announce %s: header %+v, %d pages vs %d", l0, snap, ah, len(a), len(s))
	}
	for pgno, data := range s {
		if !bytes.Equal(a[pgno], data) {
			t.Fatalf("%s: page %d differs from %s", l0, pgno, snap)
		}
	}
}

// headerTrailerOf verifies a file and returns its header and trailer.
func headerTrailerOf(t *testing.T, st store.Store, f store.FileInfo) (ltx.Header, ltx.Trailer) {
	t.Helper()
	dec := ltx.NewDecoder(bytes.NewReader(readFile(t, st, f)))
	if err := dec.Verify(); err != nil {
		t.Fatalf("%s: verify: %v", f, err)
	}
	return dec.Header(), dec.Trailer()
}

func readFile(t *testing.T, st store.Store, f store.FileInfo) []byte {
	t.Helper()
	rc, err := st.Open(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if f.Size != 0 && int64(len(b)) != f.Size {
		t.Fatalf("%s: listed as %d bytes, read %d", f, f.Size, len(b))
	}
	return b
}

// applyFile applies one LTX file to out, checking it against pos.
func applyFile(t *testing.T, st store.Store, f store.FileInfo, out *os.File, pos ltx.Pos) ltx.Pos {
	t.Helper()
	b := readFile(t, st, f)
	if err := ltx.NewDecoder(bytes.NewReader(b)).Verify(); err != nil {
		t.Fatalf("%s: verify: %v", f, err)
	}
	dec := ltx.NewDecoder(bytes.NewReader(b))
	if err := dec.DecodeHeader(); err != nil {
		t.Fatal(err)
	}
	hdr := dec.Header()
	switch {
	case hdr.MinTXID != f.MinTXID || hdr.MaxTXID != f.MaxTXID:
		t.Fatalf("%s: header says TXIDs %d-%d", f, hdr.MinTXID, hdr.MaxTXID)
	case hdr.NoChecksum():
		t.Fatalf("%s: NoChecksum flag set", f)
	case hdr.Timestamp == 0 || hdr.Commit == 0:
		t.Fatalf("%s: header lacks timestamp or commit: %+v", f, hdr)
	case f.Level == store.SnapshotLevel && !hdr.IsSnapshot():
		t.Fatalf("%s: level-9 file is not a snapshot", f)
	case f.Level == 0 && hdr.MinTXID != pos.TXID+1:
		t.Fatalf("%s: does not follow TXID %d", f, pos.TXID)
	case f.Level == 0 && hdr.PreApplyChecksum != pos.PostApplyChecksum:
		t.Fatalf("%s: pre-apply checksum %s, previous post-apply checksum %s", f, hdr.PreApplyChecksum, pos.PostApplyChecksum)
	}
	if hdr.IsSnapshot() {
		if err := out.Truncate(0); err != nil {
			t.Fatal(err)
		}
	}
	ltxtest.DecodeInto(t, dec, out)
	img := Image{R: out, PageSize: hdr.PageSize, Commit: hdr.Commit}
	sum, err := ImageChecksum(img)
	if err != nil {
		t.Fatal(err)
	}
	if sum != dec.Trailer().PostApplyChecksum {
		t.Fatalf("%s: rebuilt database has checksum %s, file says %s", f, sum, dec.Trailer().PostApplyChecksum)
	}
	return dec.PostApplyPos()
}

// headerBytesThatDiffer are the page-1 byte ranges a copy may not share with
// its source: the change counter, version-valid-for and the SQLite version
// number, all set by the copy's own commit.
var headerBytesThatDiffer = [][2]int{{24, 28}, {92, 100}}

// sameImage compares two database files page by page, ignoring
// headerBytesThatDiffer.
func sameImage(t *testing.T, want, got string) {
	t.Helper()
	a, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(b) {
		t.Fatalf("primary is %d bytes, rebuilt database %d", len(a), len(b))
	}
	if len(a) < 100 {
		t.Fatalf("database of %d bytes", len(a))
	}
	a, b = bytes.Clone(a), bytes.Clone(b)
	for _, r := range headerBytesThatDiffer {
		copy(b[r[0]:r[1]], a[r[0]:r[1]])
	}
	if !bytes.Equal(a, b) {
		img, _ := NewImage(bytes.NewReader(a), int64(len(a)))
		for off := 0; off < len(a); off += int(img.PageSize) {
			end := off + int(img.PageSize)
			if !bytes.Equal(a[off:end], b[off:end]) {
				t.Fatalf("page %d differs", off/int(img.PageSize)+1)
			}
		}
	}
}

// sameContent checks that the rebuilt database passes integrity_check and
// holds the primary's tables, row for row.
func sameContent(t *testing.T, p *primary, rebuilt string) {
	t.Helper()
	db := openRebuilt(t, rebuilt)
	defer db.Close()
	var ok string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("rebuilt database: integrity_check: %q %v", ok, err)
	}
	want, got := testtool.ContentHash(t, p.db), testtool.ContentHash(t, db)
	if want != got {
		t.Fatalf("content differs:\nprimary: %s\nrebuilt: %s", want, got)
	}
	var wantCookie, gotCookie int64
	if err := p.db.QueryRow("PRAGMA schema_version").Scan(&wantCookie); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("PRAGMA schema_version").Scan(&gotCookie); err != nil {
		t.Fatal(err)
	}
	if wantCookie != gotCookie {
		t.Fatalf("schema cookie: primary %d, rebuilt %d", wantCookie, gotCookie)
	}
}

// openRebuilt opens a copy of a rebuilt database in rollback mode (bytes
// 18-19 of a WAL primary's page 1 say WAL), read-only.
func openRebuilt(t *testing.T, rebuilt string) *sql.DB {
	t.Helper()
	b, err := os.ReadFile(rebuilt)
	if err != nil {
		t.Fatal(err)
	}
	b[18], b[19] = 1, 1
	path := filepath.Join(t.TempDir(), "check.db")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// verifyStore rebuilds the database from st and checks it against the
// primary: position, page images and content.
func verifyStore(t *testing.T, p *primary, st store.Store, res Result) {
	t.Helper()
	rebuilt, pos := rebuild(t, st)
	if pos.TXID != res.TXID || pos.PostApplyChecksum != res.Checksum {
		t.Fatalf("store ends at %s, publisher says %d/%s", pos, res.TXID, res.Checksum)
	}
	p.checkpoint()
	sameImage(t, p.path, rebuilt)
	sameContent(t, p, rebuilt)
}
