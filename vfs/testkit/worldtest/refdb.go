package worldtest

import (
	"database/sql"
	"fmt"
	"testing"

	"github.com/walrust/walrust/vfs/testkit/ltxtest"
)

// RefDB is the reference: a real SQLite database in rollback-journal mode,
// so that its file alone is the committed state.
type RefDB struct {
	t    testing.TB
	Path string
	DB   *sql.DB
}

// NewRefDB creates the reference at path with table t (id, k, v) and an
// index on k.
func NewRefDB(t testing.TB, path string, pageSize int) *RefDB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=DELETE&_synchronous=OFF")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	r := &RefDB{t: t, Path: path, DB: db}
	r.Exec(fmt.Sprintf("PRAGMA page_size=%d", pageSize))
	r.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT, v BLOB)")
	r.Exec("CREATE INDEX t_k ON t (k)")
	var got int
	if err := db.QueryRow("PRAGMA page_size").Scan(&got); err != nil || got != pageSize {
		t.Fatalf("reference page size = %d, %v; want %d", got, err, pageSize)
	}
	return r
}

// Exec runs one statement, failing the test on error.
func (r *RefDB) Exec(q string, args ...any) {
	r.t.Helper()
	if _, err := r.DB.Exec(q, args...); err != nil {
		r.t.Fatalf("%s: %v", q, err)
	}
}

// Insert adds n rows, a statement each: keys k0 to k<n-1>, and random
// values of 40 bytes and up, every third of 1500 (past a 1024-byte page).
func (r *RefDB) Insert(n int) {
	r.t.Helper()
	for i := range n {
		size := 40 + i*13
		if i%3 == 2 {
			size = 1500
		}
		r.Exec("INSERT INTO t (k, v) VALUES (?, randomblob(?))", fmt.Sprint("k", i), size)
	}
}

// Tx runs fn in one transaction: one commit, one TXID.
func (r *RefDB) Tx(fn func(tx *sql.Tx)) {
	r.t.Helper()
	tx, err := r.DB.Begin()
	if err != nil {
		r.t.Fatal(err)
	}
	fn(tx)
	if err := tx.Commit(); err != nil {
		r.t.Fatal(err)
	}
}

// Image is the reference's file as it is now.
func (r *RefDB) Image() []byte { return ltxtest.ReadImage(r.t, r.Path) }
