package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestReaderAcrossRebootstrap: a read transaction is open when the store
// forces a re-bootstrap (the L0 files after the replica's TXID are gone; a
// newer snapshot of a VACUUMed, much smaller database and an L0 file after
// it are there). The
// transaction keeps seeing its TXID — rows, page count, walrust_txid —
// while other connections already see the new database; once it ends, the
// same connection sees the new one too.
func TestReaderAcrossRebootstrap(t *testing.T) {
	e := newWorld(t, 1024, false)
	e.Ref.Insert(120)
	e.Commit() // 2
	db := e.follow()
	db.SetMaxOpenConns(2)
	e.waitCaughtUp(db)
	oldRows := e.refRows()
	var oldPages int64
	if err := e.Ref.DB.QueryRow("PRAGMA page_count").Scan(&oldPages); err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	long, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Close()
	tx, err := long.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	e.checkRows(tx, oldRows, "long reader before")

	e.Ref.Exec("DELETE FROM t WHERE id > 10")
	e.Commit() // 3
	e.Ref.Exec("VACUUM")
	e.Commit() // 4
	e.Ref.Insert(2)
	e.AdvanceRef() // 5
	// The snapshot first: a store that has lost its L0 files and holds only
	// the old snapshot (behind the replica) looks wiped, and the follower
	// would rightly re-bootstrap from that one first.
	e.Snapshot()
	if err := os.RemoveAll(filepath.Join(e.StoreDir, "ltx", "0")); err != nil {
		t.Fatal(err)
	}
	e.Ref.Insert(1)
	e.Commit() // 6: the follower sees it after a gap, and re-bootstraps
	eventually(t, "re-bootstrap", func() error {
		if st := status(t, db); st.Bootstraps != 2 || st.TXID != 6 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	newRows := e.refRows()
	e.checkRows(db, newRows, "other connection") // the pool's other connection

	e.checkRows(tx, oldRows, "long reader after the re-bootstrap")
	var pages, txid int64
	if err := tx.QueryRow("PRAGMA page_count").Scan(&pages); err != nil || pages != oldPages {
		t.Fatalf("page_count in the long transaction = %d, %v; want %d", pages, err, oldPages)
	}
	if err := tx.QueryRow("PRAGMA walrust_txid").Scan(&txid); err != nil || txid != 2 {
		t.Fatalf("walrust_txid in the long transaction = %d, %v; want 2", txid, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	e.checkRows(long, newRows, "long connection after its transaction")
	if err := long.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil || pages >= oldPages {
		t.Fatalf("page_count after = %d, %v; want fewer than %d", pages, err, oldPages)
	}
	var ok string
	if err := long.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity_check = %q, %v", ok, err)
	}
}
