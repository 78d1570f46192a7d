package publish

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/ltxtest"
)

// publisherWith opens a publisher of p to st with opts (and a temporary
// work directory unless opts names one).
func publisherWith(t *testing.T, p *primary, st store.Store, opts Options) *Publisher {
	t.Helper()
	if opts.WorkDir == "" {
		opts.WorkDir = t.TempDir()
	}
	pub, err := New(p.path, st, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	return pub
}

// age sets the mtime of a file in a file store to d ago: the ModTime
// listings report, without waiting.
func age(t *testing.T, st *store.FileStore, f store.FileInfo, d time.Duration) {
	t.Helper()
	root := strings.TrimPrefix(st.String(), "file://")
	then := time.Now().Add(-d)
	if err := os.Chtimes(filepath.Join(root, "ltx", strconv.Itoa(f.Level), f.Name()), then, then); err != nil {
		t.Fatal(err)
	}
}

func snap(txid ltx.TXID) store.FileInfo {
	return store.FileInfo{Level: store.SnapshotLevel, MinTXID: 1, MaxTXID: txid}
}

func l0(txid ltx.TXID) store.FileInfo { return store.FileInfo{Level: 0, MinTXID: txid, MaxTXID: txid} }

// names lists a level of st as file names.
func names(t *testing.T, st store.Store, level int) []string {
	t.Helper()
	files, err := st.ListAfter(context.Background(), level, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		out = append(out, f.Name())
	}
	return out
}

func nameList(files ...store.FileInfo) []string {
	var out []string
	for _, f := range files {
		out = append(out, f.Name())
	}
	return out
}

func sameNames(a, b []string) bool { return strings.Join(a, " ") == strings.Join(b, " ") }

// checkSnapshotContent decodes the snapshot f alone and checks it holds the
// primary's content and the checksum the publisher reported.
func checkSnapshotContent(t *testing.T, p *primary, st store.Store, f store.FileInfo, sum ltx.Checksum) {
	t.Helper()
	dec := ltx.NewDecoder(bytes.NewReader(readFile(t, st, f)))
	if err := dec.DecodeHeader(); err != nil {
		t.Fatalf("%s: %v", f, err)
	}
	path := filepath.Join(t.TempDir(), "snapshot.db")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	ltxtest.DecodeInto(t, dec, out)
	if hdr := dec.Header(); !hdr.IsSnapshot() || hdr.MaxTXID != f.MaxTXID || hdr.NoChecksum() {
		t.Fatalf("%s: header %+v", f, hdr)
	}
	if got := dec.Trailer().PostApplyChecksum; got != sum {
		t.Fatalf("%s: checksum %s, the position's is %s", f, got, sum)
	}
	p.checkpoint()
	sameContent(t, p, path)
}

// A periodic snapshot repeats the published state at its TXID once the
// newest snapshot is older than SnapshotInterval; the publisher knows it as
// its own afterwards, also after a restart, so the next change is a plain
// level-0 file.
func TestPeriodicSnapshot(t *testing.T) {
	p := newPrimary(t, "wal", 4096)
	st := newFileStore(t)
	newTable(t, p)
	work := t.TempDir()
	opts := Options{WorkDir: work, SnapshotInterval: time.Hour}
	pub := publisherWith(t, p, st, opts)

	res := publishOnce(t, pub)
	expect(t, res, true, true, 1)
	insertRows(t, p, 100, 10, 200)
	res = publishOnce(t, pub)
	expect(t, res, true, false, 2)
	if res.Periodic != nil {
		t.Fatalf("snapshot of a fresh store's age: %+v", res.Periodic)
	}

	// The snapshot is now two hours old, but the publisher goes by what
	// it listed: idle publishes make no request.
	age(t, st, snap(1), 2*time.Hour)
	before := st.Stats()
	res = publishOnce(t, pub)
	expect(t, res, false, false, 2)
	if res.Periodic != nil || st.Stats() != before {
		t.Fatalf("idle publish: periodic %+v, requests %+v -> %+v", res.Periodic, before, st.Stats())
	}

	// The next change lists the store again and finds it old.
	insertRows(t, p, 200, 10, 200)
	res = publishOnce(t, pub)
	expect(t, res, true, false, 3)
	if res.Periodic == nil || res.UpkeepErr != nil {
		t.Fatalf("no periodic snapshot after the newest grew 2h old: %+v", res)
	}
	if f := res.Periodic.File; f.Level != store.SnapshotLevel || f.MinTXID != 1 || f.MaxTXID != 3 || res.Periodic.Pages == 0 {
		t.Fatalf("periodic snapshot %+v, want L9 1-3", res.Periodic)
	}
	if !strings.Contains(res.Periodic.Reason, snap(1).Name()) || !strings.Contains(res.Periodic.Reason, "2h0m") {
		t.Fatalf("reason %q", res.Periodic.Reason)
	}
	checkSnapshotContent(t, p, st, res.Periodic.File, res.Checksum)
	verifyStore(t, p, st, res) // the snapshot agrees with the level-0 file at TXID 3
	puts := st.Stats().Puts

	// Idle: the newest snapshot is at the published TXID.
	res = publishOnce(t, pub)
	expect(t, res, false, false, 3)
	if res.Periodic != nil {
		t.Fatalf("second snapshot at TXID 3: %+v", res.Periodic)
	}

	// A new publisher on the work directory checks the store, which ends
	// with two files at TXID 3: both are ours.
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	pub = publisherWith(t, p, st, opts)
	res = publishOnce(t, pub)
	expect(t, res, false, false, 3)
	if res.Periodic != nil || st.Stats().Puts != puts {
		t.Fatalf("restart published again: %+v, %d puts (was %d)", res, st.Stats().Puts, puts)
	}
	insertRows(t, p, 300, 10, 200)
	res = publishOnce(t, pub)
	expect(t, res, true, false, 4) // not a snapshot "because the store holds 1-3"
	if res.Periodic != nil || st.Stats().Puts != puts+1 {
		t.Fatalf("after the restart: %+v, %d puts (was %d)", res, st.Stats().Puts, puts)
	}
	verifyStore(t, p, st, res)
	if got, want := names(t, st, store.SnapshotLevel), nameList(snap(1), snap(3)); !sameNames(got, want) {
		t.Fatalf("snapshots %v, want %v", got, want)
	}
}

// A periodic snapshot in the store that the position does not name (as a
// publisher that recorded it only after the upload, or none at all, could
// leave) is someone else's file at our TXID: the next publish starts over
// with a snapshot after it, and the store stays consistent.
func TestUnrecordedSnapshotIsForeign(t *testing.T) {
	p := newPrimary(t, "delete", 4096)
	st := newFileStore(t)
	newTable(t, p)
	work := t.TempDir()
	pub := publisherWith(t, p, st, Options{WorkDir: work, SnapshotInterval: time.Hour})
	expect(t, publishOnce(t, pub), true, true, 1)
	age(t, st, snap(1), 2*time.Hour)
	insertRows(t, p, 100, 10, 200)
	res := publishOnce(t, pub)
	if res.Periodic == nil {
		t.Fatalf("no periodic snapshot: %+v", res)
	}
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	rewritePosition(t, work, func(m map[string]any) { delete(m, "snapshot_file") })

	pub = publisherWith(t, p, st, Options{WorkDir: work})
	insertRows(t, p, 200, 10, 200)
	res = publishOnce(t, pub)
	expect(t, res, true, true, 3)
	if !strings.Contains(res.Reason, "not the file published from here") {
		t.Fatalf("reason %q", res.Reason)
	}
	verifyStore(t, p, st, res)
}

// rewritePosition edits position.json in work.
func rewritePosition(t *testing.T, work string, edit func(map[string]any)) {
	t.Helper()
	path := filepath.Join(work, positionFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	if b, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A position written before periodic snapshots existed (version 1) is
// still a position: no snapshot to start over.
func TestPositionVersion1(t *testing.T) {
	p := newPrimary(t, "delete", 4096)
	st := newFileStore(t)
	newTable(t, p)
	work := t.TempDir()
	pub := publisherFor(t, p, st, work)
	expect(t, publishOnce(t, pub), true, true, 1)
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	rewritePosition(t, work, func(m map[string]any) {
		if m["version"] != float64(positionVer) {
			t.Fatalf("position version %v, want %d", m["version"], positionVer)
		}
		m["version"] = 1
	})
	pub = publisherFor(t, p, st, work)
	insertRows(t, p, 100, 10, 200)
	res := publishOnce(t, pub)
	expect(t, res, true, false, 2)
	verifyStore(t, p, st, res)
}

// faultyStore fails the puts and deletes its hooks say to fail.
type faultyStore struct {
	store.Store
	failPut    func(store.FileInfo) bool
	failDelete func(store.FileInfo) bool
	deletes    atomic.Int64
}

var errInjected = errors.New("injected failure")

func (s *faultyStore) Put(ctx context.Context, f store.FileInfo, r io.Reader) error {
	if s.failPut != nil && s.failPut(f) {
		return errInjected
	}
	return s.Store.Put(ctx, f, r)
}

func (s *faultyStore) Delete(ctx context.Context, f store.FileInfo) error {
	s.deletes.Add(1)
	if s.failDelete != nil && s.failDelete(f) {
		return errInjected
	}
	return s.Store.Delete(ctx, f)
}

// A periodic snapshot whose upload fails leaves the publish done and says
// why in UpkeepErr; it is recorded in the position before the upload, so a
// later try at the same TXID is still ours.
func TestPeriodicSnapshotUploadFails(t *testing.T) {
	p := newPrimary(t, "delete", 4096)
	fs := newFileStore(t)
	var failing atomic.Bool
	st := &faultyStore{Store: fs, failPut: func(f store.FileInfo) bool { return failing.Load() && f.Level == store.SnapshotLevel }}
	newTable(t, p)
	work := t.TempDir()
	pub := publisherWith(t, p, st, Options{WorkDir: work, SnapshotInterval: time.Hour})
	expect(t, publishOnce(t, pub), true, true, 1)
	age(t, fs, snap(1), 2*time.Hour)
	failing.Store(true)
	insertRows(t, p, 100, 10, 200)
	res, err := pub.PublishOnce(context.Background())
	if err != nil {
		t.Fatalf("the publish failed with its upkeep: %v", err)
	}
	expect(t, res, true, false, 2)
	if res.Periodic != nil || !errors.Is(res.UpkeepErr, errInjected) || !strings.Contains(res.UpkeepErr.Error(), "periodic snapshot") {
		t.Fatalf("periodic %+v, upkeep error %v", res.Periodic, res.UpkeepErr)
	}
	if got := names(t, st, store.SnapshotLevel); !sameNames(got, nameList(snap(1))) {
		t.Fatalf("snapshots %v", got)
	}

	// Not again at once; then, after the retry delay, it goes through.
	failing.Store(false)
	if res := publishOnce(t, pub); res.Periodic != nil || res.UpkeepErr != nil {
		t.Fatalf("retried at once: %+v", res)
	}
	pub.snapshotRetry = time.Time{}
	res = publishOnce(t, pub)
	if res.Periodic == nil || res.Periodic.File.MaxTXID != 2 {
		t.Fatalf("retry: %+v", res)
	}
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	pub = publisherWith(t, p, st, Options{WorkDir: work})
	insertRows(t, p, 200, 10, 200)
	res = publishOnce(t, pub)
	expect(t, res, true, false, 3)
	verifyStore(t, p, st, res)
}
