package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"
	"github.com/walrust/walrust/vfs"
	"github.com/walrust/walrust/vfs/internal/testhooks"
	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/ltxtest"
	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// The bad-input tests' environment: a reference database, a file store it
// publishes to, a replica, and waits on the replica's status.

// biEnv is one test's reference database, file store and replica path.
type biEnv struct {
	t        *testing.T
	dir      string
	storeDir string
	replica  string
	refPath  string
	ref      *sql.DB
	pub      *ltxtest.Primary
	images   map[ltx.TXID][]byte
	sums     map[ltx.TXID]ltx.Checksum
	log      *testtool.Buffer
}

// newBiEnv makes a reference database with table t at pageSize, publishes
// its first image as a snapshot at TXID 1 unless noSnapshot, and captures
// walrust's log.
func newBiEnv(t *testing.T, pageSize int, noSnapshot bool) *biEnv {
	t.Helper()
	if err := vfs.Register(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	e := &biEnv{
		t: t, dir: dir, storeDir: filepath.Join(dir, "store"), replica: filepath.Join(dir, "replica.db"),
		images: map[ltx.TXID][]byte{}, sums: map[ltx.TXID]ltx.Checksum{}, log: &testtool.Buffer{},
	}
	restore := testhooks.SetLogger(slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() {
		restore()
		if t.Failed() {
			t.Logf("walrust log:\n%s", e.log)
		}
	})
	if err := os.MkdirAll(e.storeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenFile(e.storeDir)
	if err != nil {
		t.Fatal(err)
	}
	e.ref, e.refPath = biRefDB(t, filepath.Join(dir, "primary.db"), pageSize)
	e.pub = &ltxtest.Primary{Store: st, PageSize: uint32(pageSize)}
	e.advance()
	if !noSnapshot {
		e.pub.Snapshot(t)
	}
	return e
}

func biRefDB(t *testing.T, path string, pageSize int) (*sql.DB, string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=DELETE&_synchronous=OFF")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	for _, q := range []string{
		fmt.Sprintf("PRAGMA page_size=%d", pageSize),
		"CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT, v BLOB)",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return db, path
}

func (e *biEnv) exec(q string, args ...any) {
	e.t.Helper()
	if _, err := e.ref.Exec(q, args...); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
}

// insert adds n rows, bigger than a 1024-byte page every third one.
func (e *biEnv) insert(n int) {
	e.t.Helper()
	for i := range n {
		size := 40 + i*13
		if i%3 == 2 {
			size = 1500
		}
		e.exec("INSERT INTO t (k, v) VALUES (?, randomblob(?))", fmt.Sprint("k", i), size)
	}
}

// advance records the reference's file as the next TXID, unpublished.
func (e *biEnv) advance() ltx.TXID {
	e.t.Helper()
	e.pub.Advance(ltxtest.ReadImage(e.t, e.refPath), e.pub.TXID+1)
	e.images[e.pub.TXID], e.sums[e.pub.TXID] = e.pub.Image, e.pub.Checksum
	return e.pub.TXID
}

// commit publishes the reference's file as the next TXID at L0.
func (e *biEnv) commit() ltx.TXID {
	e.t.Helper()
	txid := e.advance()
	e.put(0, e.encode(txid, txid))
	return txid
}

func (e *biEnv) encode(minTXID, maxTXID ltx.TXID) []byte {
	e.t.Helper()
	return ltxtest.Encode(e.t, e.images[minTXID-1], e.images[maxTXID], e.pub.PageSize, minTXID, maxTXID,
		e.sums[minTXID-1], e.pub.NoChecksum, time.Now())
}

func (e *biEnv) put(level int, data []byte) store.FileInfo {
	e.t.Helper()
	return ltxtest.Put(e.t, e.pub.Store, level, data)
}

func (e *biEnv) ltxPath(level int, minTXID, maxTXID ltx.TXID) string {
	return filepath.Join(e.storeDir, "ltx", fmt.Sprint(level), ltx.FormatFilename(minTXID, maxTXID))
}

// writeRaw places bytes under an LTX name directly, as a broken producer
// or a torn upload would.
func (e *biEnv) writeRaw(level int, minTXID, maxTXID ltx.TXID, data []byte) string {
	e.t.Helper()
	p := e.ltxPath(level, minTXID, maxTXID)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		e.t.Fatal(err)
	}
	return filepath.Base(p)
}

func (e *biEnv) source() string { return "file://" + e.storeDir }

// uri is the replica's URI with the given parameters after vfs=walrust.
func (e *biEnv) uri(params string) string {
	return "file:" + e.replica + "?vfs=walrust&" + params
}

// follow opens the replica following the store at a 20ms interval.
func (e *biEnv) follow() *sql.DB {
	e.t.Helper()
	db := biOpen(e.t, e.uri("source="+e.source()+"&interval=20ms"))
	if err := db.Ping(); err != nil {
		e.t.Fatalf("open replica: %v", err)
	}
	return db
}

func biOpen(t *testing.T, uri string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", uri)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

// biOpenFails opens uri, expects the open to fail, and returns how long it
// took.
func biOpenFails(t *testing.T, uri string) time.Duration {
	t.Helper()
	db, err := sql.Open("sqlite3", uri)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	err = db.Ping()
	took := time.Since(start)
	if err == nil {
		var n int
		err = db.QueryRow("SELECT count(*) FROM sqlite_schema").Scan(&n)
	}
	if err == nil {
		t.Fatalf("open %s succeeded", uri)
	}
	return took
}

// biNothingCreated checks that no file of a replica at path exists.
func biNothingCreated(t *testing.T, path string) {
	t.Helper()
	for _, p := range []string{path, path + "-replica-state"} {
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("%s left behind by a failed open", p)
		}
	}
}

// biQuerier is a *sql.DB or a *sql.Conn.
type biQuerier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// biRows is the content of t, one string per row.
func biRows(db biQuerier) ([]string, error) {
	rows, err := db.QueryContext(context.Background(), "SELECT id, k, hex(v) FROM t ORDER BY id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id int64
		var k, v string
		if err := rows.Scan(&id, &k, &v); err != nil {
			return nil, err
		}
		out = append(out, fmt.Sprintf("%d|%s|%s", id, k, v))
	}
	return out, rows.Err()
}

func (e *biEnv) refRows() []string {
	e.t.Helper()
	r, err := biRows(e.ref)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// biStatus is PRAGMA walrust_status.
type biStatus struct {
	Source     string    `json:"source"`
	Path       string    `json:"path"`
	TXID       uint64    `json:"txid"`
	LastError  string    `json:"last_error"`
	Bootstraps int64     `json:"bootstraps"`
	Interval   string    `json:"interval"`
	LastPoll   time.Time `json:"last_poll"`
}

func status(t *testing.T, db *sql.DB) biStatus {
	t.Helper()
	var s string
	if err := db.QueryRow("PRAGMA walrust_status").Scan(&s); err != nil {
		t.Fatalf("walrust_status: %v", err)
	}
	var st biStatus
	if err := json.Unmarshal([]byte(s), &st); err != nil {
		t.Fatalf("walrust_status %q: %v", s, err)
	}
	return st
}

// biWait polls cond until it returns nil.
func biWait(t *testing.T, what string, cond func() error) {
	t.Helper()
	testtool.Eventually(t, what, 10*time.Second, cond)
}

// waitCaughtUp waits until the replica serves the reference's content at
// the primary's TXID.
func (e *biEnv) waitCaughtUp(db *sql.DB) {
	e.t.Helper()
	want := e.refRows()
	biWait(e.t, fmt.Sprintf("TXID %d", e.pub.TXID), func() error {
		var txid uint64
		if err := db.QueryRow("PRAGMA walrust_txid").Scan(&txid); err != nil {
			return err
		}
		if txid != uint64(e.pub.TXID) {
			return fmt.Errorf("at TXID %d", txid)
		}
		return nil
	})
	e.checkRows(db, want, "caught up")
}

func (e *biEnv) checkRows(db biQuerier, want []string, what string) {
	e.t.Helper()
	got, err := biRows(db)
	if err != nil {
		e.t.Fatalf("%s: query: %v", what, err)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		e.t.Fatalf("%s: replica has %d rows, want %d (content differs)", what, len(got), len(want))
	}
}

// waitPolls waits until the follower has polled n more times.
func waitPolls(t *testing.T, db *sql.DB, n int) {
	t.Helper()
	last := status(t, db).LastPoll
	for i := range n {
		biWait(t, fmt.Sprintf("poll %d", i+1), func() error {
			if p := status(t, db).LastPoll; !p.After(last) {
				return fmt.Errorf("last poll still %s", p)
			} else {
				last = p
			}
			return nil
		})
	}
}

// waitNoError waits until the status reports no error: the poll that
// recovered has finished.
func waitNoError(t *testing.T, db *sql.DB) biStatus {
	t.Helper()
	var st biStatus
	biWait(t, "last_error to clear", func() error {
		if st = status(t, db); st.LastError != "" {
			return fmt.Errorf("last_error %q", st.LastError)
		}
		return nil
	})
	return st
}

// waitError waits until the status's last_error contains every part.
func waitError(t *testing.T, db *sql.DB, parts ...string) biStatus {
	t.Helper()
	var st biStatus
	biWait(t, fmt.Sprintf("last_error with %q", parts), func() error {
		st = status(t, db)
		for _, p := range parts {
			if !strings.Contains(st.LastError, p) {
				return fmt.Errorf("last_error %q", st.LastError)
			}
		}
		return nil
	})
	return st
}
