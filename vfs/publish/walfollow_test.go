package publish

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/walrust/walrust/vfs/store"
)

// wholeReads counts the publishes that read the whole database (the full
// compare and snapshots), through Progress.
func wholeReads(opts *Options) *atomic.Int64 {
	var n atomic.Int64
	opts.ProgressThreshold = 1
	opts.Progress = func(pr Progress) {
		if (pr.Phase == "compare" || pr.Phase == "snapshot") && pr.Done == pr.Total {
			n.Add(1)
		}
	}
	return &n
}

// The log is followed across restarts of the publisher as long as it is
// the same log; a log that an application TRUNCATE checkpoint emptied
// while the publisher was down makes the next publish read the whole
// database, and the one after follows again.
func TestFollowAcrossRestarts(t *testing.T) {
	p := newPrimary(t, "wal", 4096)
	st := newFileStore(t)
	work := t.TempDir()
	newTable(t, p)
	opts := Options{WorkDir: work}
	whole := wholeReads(&opts)
	open := func() *Publisher {
		pub, err := New(p.path, st, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pub.Close() })
		return pub
	}
	pub := open()
	expect(t, publishOnce(t, pub), true, true, 1)
	insertRows(t, p, 100, 20, 300)
	expect(t, publishOnce(t, pub), true, false, 2)
	pub.Close()

	// Restarted, same log: followed.
	insertRows(t, p, 200, 20, 300)
	pub = open()
	expect(t, publishOnce(t, pub), true, false, 3)
	if n := whole.Load(); n != 1 {
		t.Fatalf("%d whole reads, want only the first snapshot's", n)
	}
	pub.Close()

	// Down while the application wrote and truncated the log.
	insertRows(t, p, 300, 20, 300)
	p.exec("UPDATE t SET name = 'changed while down' WHERE id % 5 = 0")
	p.exec("PRAGMA wal_checkpoint(TRUNCATE)")
	insertRows(t, p, 400, 5, 300)
	pub = open()
	res := publishOnce(t, pub)
	expect(t, res, true, false, 4)
	if n := whole.Load(); n != 2 || !strings.Contains(res.Compared, "restarted or truncated") {
		t.Fatalf("%d whole reads (%q), want a full compare after the log was truncated unseen", n, res.Compared)
	}
	verifyStore(t, p, st, res)
	insertRows(t, p, 500, 5, 300)
	res = publishOnce(t, pub)
	expect(t, res, true, false, 5)
	if n := whole.Load(); n != 2 || res.Compared != "" {
		t.Fatalf("%d whole reads after the full compare, want the log followed again", n)
	}
	verifyStore(t, p, st, res)
}

// While the publisher runs, the log restarts only through its own
// checkpoints, and it stays bounded: many transactions past the bound are
// each published from the log, never read whole.
func TestLogStaysBounded(t *testing.T) {
	p := newPrimary(t, "wal", 4096)
	st := newFileStore(t)
	newTable(t, p)
	opts := Options{WorkDir: t.TempDir()}
	whole := wholeReads(&opts)
	pub := publisherWith(t, p, st, opts)
	expect(t, publishOnce(t, pub), true, true, 1)
	var maxWAL int64
	for i := range 16 {
		insertRows(t, p, 1000*(i+1), 400, 4000) // about 400 frames each
		res := publishOnce(t, pub)
		expect(t, res, true, false, uint64(i+2))
		fi, err := os.Stat(p.path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		maxWAL = max(maxWAL, fi.Size())
	}
	if n := whole.Load(); n != 1 {
		t.Fatalf("%d whole reads, want only the first snapshot's", n)
	}
	// The bound is 1000 frames; a log past 1000 is restarted after the
	// publish that sees it, so it never holds more than 1000 + two
	// transactions' frames. Without checkpoints it would reach 6500.
	if limit := int64(2000 * (4096 + 24)); maxWAL > limit {
		t.Fatalf("the log grew to %d bytes, more than %d", maxWAL, limit)
	}
	res := publishOnce(t, pub)
	pub.Close()
	verifyStore(t, p, st, res)
}

// A crash before the image was brought to the new position leaves the
// image of the previous one (and any page of the new file may or may not
// be there yet); the next start applies the redo file again. A lost or
// damaged page checksum file is rebuilt from the image.
func TestRedoAfterCrash(t *testing.T) {
	for _, damage := range []string{"image", "sums"} {
		t.Run(damage, func(t *testing.T) {
			p := newPrimary(t, "wal", 4096)
			st := newFileStore(t)
			work := t.TempDir()
			newTable(t, p)
			pub := publisherFor(t, p, st, work)
			expect(t, publishOnce(t, pub), true, true, 1)
			image := filepath.Join(work, imageName(1))
			before, err := os.ReadFile(image)
			if err != nil {
				t.Fatal(err)
			}
			insertRows(t, p, 100, 50, 2000)
			expect(t, publishOnce(t, pub), true, false, 2)
			pub.Close()

			switch damage {
			case "image": // as if no page of TXID 2 had reached the image
				if err := os.WriteFile(image, before, 0o644); err != nil {
					t.Fatal(err)
				}
			case "sums":
				if err := os.WriteFile(filepath.Join(work, sumsFile), make([]byte, 64), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			pub = publisherFor(t, p, st, work)
			p.exec("UPDATE t SET body = 'changed' WHERE id % 2 = 0")
			res := publishOnce(t, pub)
			expect(t, res, true, false, 3)
			pub.Close()
			verifyStore(t, p, st, res)
		})
	}
}

// A database that Litestream replicates is refused, clearly.
func TestRefuseLitestream(t *testing.T) {
	for _, how := range []string{"table", "directory"} {
		t.Run(how, func(t *testing.T) {
			p := newPrimary(t, "wal", 4096)
			newTable(t, p)
			if how == "table" {
				p.exec("CREATE TABLE _litestream_seq (id INTEGER PRIMARY KEY, seq INTEGER)")
			} else if err := os.Mkdir(p.path+"-litestream", 0o755); err != nil {
				t.Fatal(err)
			}
			pub := publisherFor(t, p, newFileStore(t), "")
			_, err := pub.PublishOnce(context.Background())
			if !errors.Is(err, ErrLitestream) {
				t.Fatalf("publish beside Litestream: %v", err)
			}
			if err := pub.Run(context.Background(), 1e6); !errors.Is(err, ErrLitestream) {
				t.Fatalf("Run beside Litestream returned %v", err)
			}
		})
	}
}

// A database file replaced while the publisher was down (a restore) is
// compared in full, even though its log may look like a continuation.
func TestReplacedDatabase(t *testing.T) {
	p := newPrimary(t, "wal", 4096)
	st := newFileStore(t)
	work := t.TempDir()
	newTable(t, p)
	opts := Options{WorkDir: work}
	whole := wholeReads(&opts)
	pub, err := New(p.path, st, opts)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, publishOnce(t, pub), true, true, 1)
	insertRows(t, p, 100, 20, 300)
	expect(t, publishOnce(t, pub), true, false, 2)
	pub.Close()

	// Another database at the same path: a copy made now, changed, then
	// moved over the primary.
	other := filepath.Join(t.TempDir(), "other.db")
	p.exec("VACUUM INTO ?", other)
	p.db.Close()
	q := &primary{t: t, path: other}
	if q.db, err = sql.Open("sqlite3", "file:"+other+"?_busy_timeout=5000"); err != nil {
		t.Fatal(err)
	}
	q.exec("PRAGMA journal_mode=wal")
	q.exec("UPDATE t SET name = 'restored' WHERE id % 2 = 0")
	q.db.Close()
	for _, suffix := range []string{"-wal", "-shm"} {
		os.Remove(p.path + suffix)
	}
	if err := os.Rename(other, p.path); err != nil {
		t.Fatal(err)
	}
	os.Rename(other+"-wal", p.path+"-wal")
	if p.db, err = sql.Open("sqlite3", "file:"+p.path+"?_busy_timeout=5000"); err != nil {
		t.Fatal(err)
	}
	p.db.SetMaxOpenConns(1)
	t.Cleanup(func() { p.db.Close() })

	pub, err = New(p.path, st, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	res := publishOnce(t, pub)
	expect(t, res, true, false, 3)
	if n := whole.Load(); n != 2 || res.Compared != "the database file was replaced" {
		t.Fatalf("%d whole reads (%q), want a full compare of the replaced file", n, res.Compared)
	}
	pub.Close()
	verifyStore(t, p, st, res)
}

// A publish that checkpoints lets writers go before its upload; when that
// upload fails, the log may restart past the position, so the next
// publish must not follow a new log from its start: it compares in full,
// and the store stays whole.
func TestUploadFailsAfterCheckpoint(t *testing.T) {
	p := newPrimary(t, "wal", 4096)
	fs := newFileStore(t)
	var fail atomic.Bool
	st := &faultyStore{Store: fs, failPut: func(store.FileInfo) bool { return fail.Load() }}
	newTable(t, p)
	pub := publisherWith(t, p, st, Options{WorkDir: t.TempDir()})
	expect(t, publishOnce(t, pub), true, true, 1)
	insertRows(t, p, 1000, 1100, 4000) // past the checkpoint bound
	expect(t, publishOnce(t, pub), true, false, 2)

	insertRows(t, p, 5000, 20, 300)
	fail.Store(true)
	if _, err := pub.PublishOnce(context.Background()); !errors.Is(err, errInjected) {
		t.Fatalf("publish with a failing store: %v", err)
	}
	fail.Store(false)
	// The checkpoint copied the whole log: this commit restarts it.
	insertRows(t, p, 6000, 20, 300)
	res := publishOnce(t, pub)
	expect(t, res, true, false, 3)
	if res.Compared == "" {
		t.Fatal("the publish after the failed upload followed the restarted log")
	}
	pub.Close()
	verifyStore(t, p, st, res)
}
