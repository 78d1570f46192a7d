package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"testing"
	"time"

	"github.com/walrust/walrust/vfs/internal/testhooks"
)

// lazyStatus is the hydration part of PRAGMA walrust_status.
type lazyStatus struct {
	TXID      uint64 `json:"txid"`
	Hydration *struct {
		PagesLocal int64 `json:"pages_local"`
		PagesTotal int64 `json:"pages_total"`
		DemandGets int64 `json:"demand_gets"`
	} `json:"hydration"`
	Hydrated *struct {
		PagesTotal int64 `json:"pages_total"`
	} `json:"hydrated"`
}

func hydration(t testing.TB, db *sql.DB) lazyStatus {
	t.Helper()
	var s string
	if err := db.QueryRow("PRAGMA walrust_status").Scan(&s); err != nil {
		t.Fatalf("walrust_status: %v", err)
	}
	var st lazyStatus
	if err := json.Unmarshal([]byte(s), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestLazyBootstrapInvariants opens a bank replica with bootstrap=lazy
// through SQLite while its snapshot still hydrates (the stream slowed
// down), and checks the invariants throughout: every read transaction
// sees one TXID and the constant total, whatever the stream, the demand
// fetches and the transfers applied meanwhile do; a transaction held
// open from before the hydration ended sees its snapshot unchanged after
// it; no file is at the replica's path until the hydrated image is
// installed; then plain SQLite reads it, and integrity_check passes.
func TestLazyBootstrapInvariants(t *testing.T) {
	e := newWorld(t, 1024, true)
	e.Ref.Exec("CREATE TABLE acct (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL, note TEXT)")
	for i := 0; i < accounts; i++ {
		e.Ref.Exec("INSERT INTO acct (id, balance, note) VALUES (?, ?, '')", i, startBalance)
	}
	e.InsertRows(600, 4000) // about 2.5 MiB of filler for the stream to take a while over
	e.AdvanceRef()
	e.Snapshot()
	defer testhooks.SetHydrateDelay(30 * time.Millisecond)() // 64 pages of 1 KiB a batch: about 1.2 s

	start := time.Now()
	db := e.openReplica("&bootstrap=lazy")
	db.SetMaxOpenConns(8)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	longCtx := context.Background() // outlives the readers' ctx
	long, err := db.Conn(longCtx)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Close()
	tx, err := long.BeginTx(longCtx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var longTXID, longTotal int64
	if err := tx.QueryRow("PRAGMA walrust_txid").Scan(&longTXID); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow("SELECT sum(balance) FROM acct").Scan(&longTotal); err != nil {
		t.Fatal(err)
	}
	firstQuery := time.Since(start)
	if st := hydration(t, db); st.Hydration == nil || st.Hydration.PagesLocal >= st.Hydration.PagesTotal {
		t.Fatalf("the first query came after the hydration (status %+v): the test tests nothing", st)
	}
	if _, err := os.Stat(e.Path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a file at the replica's path while it hydrates: %v", err)
	}

	// A point lookup after each transaction: most of its pages come by
	// demand while the stream is slow.
	readers := startBankReaders(t, ctx, db, 3, func(ctx context.Context, conn *sql.Conn) error {
		var n int
		if err := conn.QueryRowContext(ctx, "SELECT length(v) FROM t WHERE id = ?", 1+rand.Intn(600)).Scan(&n); err != nil {
			return fmt.Errorf("lookup: %w", err)
		}
		return nil
	})
	rng := rand.New(rand.NewSource(1))
	hydrated := false
	for i := 0; i < 2000 && !hydrated; i++ {
		e.transfer(rng)
		time.Sleep(2 * time.Millisecond)
		hydrated = i%20 == 0 && hydration(t, db).Hydrated != nil
	}
	if !hydrated {
		t.Fatal("the replica did not hydrate")
	}
	if st := hydration(t, db); st.Hydrated == nil {
		t.Fatal("no hydration in the status")
	}
	for range 5 {
		e.transfer(rng)
	}
	want := int64(e.Pub.TXID)
	waitFor(t, "the last transfer", func() (bool, error) {
		var txid int64
		err := db.QueryRow("PRAGMA walrust_txid").Scan(&txid)
		return txid == want, err
	})
	cancel()
	readers.stop()
	// The long transaction, begun before any page was local, still sees
	// its snapshot.
	var txid, total int64
	if err := tx.QueryRow("PRAGMA walrust_txid").Scan(&txid); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow("SELECT sum(balance) FROM acct").Scan(&total); err != nil {
		t.Fatal(err)
	}
	if txid != longTXID || total != longTotal {
		t.Fatalf("the long transaction moved from TXID %d (total %d) to TXID %d (total %d)", longTXID, longTotal, txid, total)
	}
	tx.Rollback()
	// Plain SQLite reads the installed file once the versions are folded.
	waitFor(t, "the fold", func() (bool, error) {
		plain, err := sql.Open("sqlite3", "file:"+e.Path+"?mode=ro")
		if err != nil {
			return false, err
		}
		defer plain.Close()
		var sum, n int64
		if err := plain.QueryRow("SELECT sum(balance), count(*) FROM acct").Scan(&sum, &n); err != nil {
			return false, nil
		}
		var ok string
		if err := plain.QueryRow("PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
			return false, fmt.Errorf("integrity_check: %q %v", ok, err)
		}
		return sum == accounts*startBalance && n == accounts, nil
	})
	t.Logf("first query %s after the open; status %+v", firstQuery.Round(time.Millisecond), hydration(t, db))
}
