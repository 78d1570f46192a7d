package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/walrust/walrust/vfs/testkit/testtool"
)

const (
	accounts     = 50
	startBalance = 1000
)

// newBank makes a primary with accounts whose balances always sum to
// accounts*startBalance, and publishes it.
func newBank(t *testing.T) *world {
	e := newWorld(t, 1024, false)
	e.Ref.Exec("CREATE TABLE acct (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL, note TEXT)")
	for i := 0; i < accounts; i++ {
		e.Ref.Exec("INSERT INTO acct (id, balance, note) VALUES (?, ?, '')", i, startBalance)
	}
	e.Commit()
	return e
}

// transfer moves money between two accounts in one transaction, and makes
// the rows grow and shrink so pages split and merge.
func (e *world) transfer(rng *rand.Rand) {
	from, to := rng.Intn(accounts), rng.Intn(accounts)
	amount := rng.Intn(100)
	note := make([]byte, rng.Intn(300))
	for i := range note {
		note[i] = 'a' + byte(rng.Intn(26))
	}
	tx, err := e.Ref.DB.Begin()
	if err != nil {
		e.T.Fatal(err)
	}
	if _, err := tx.Exec("UPDATE acct SET balance = balance - ?, note = ? WHERE id = ?", amount, string(note), from); err != nil {
		e.T.Fatal(err)
	}
	if _, err := tx.Exec("UPDATE acct SET balance = balance + ? WHERE id = ?", amount, to); err != nil {
		e.T.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		e.T.Fatal(err)
	}
	e.Commit()
}

// readSnapshot reads the total twice and the TXID inside one transaction.
func readSnapshot(ctx context.Context, conn *sql.Conn) (total1, total2, txid int64, err error) {
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return 0, 0, 0, err
	}
	defer tx.Rollback()
	if err = tx.QueryRow("SELECT sum(balance) FROM acct").Scan(&total1); err != nil {
		return
	}
	if err = tx.QueryRow("PRAGMA walrust_txid").Scan(&txid); err != nil {
		return
	}
	// A full scan of the notes makes the transaction touch most pages.
	if _, err = tx.Exec("SELECT count(*) FROM acct WHERE note LIKE '%zz%'"); err != nil {
		return
	}
	err = tx.QueryRow("SELECT sum(balance) FROM acct").Scan(&total2)
	return
}

// bankReaders are connections that read the bank in a loop (see
// startBankReaders).
type bankReaders struct {
	t     *testing.T
	wg    sync.WaitGroup
	errs  chan error // the first violation of each reader
	reads []int      // transactions per reader; read after stop
}

// startBankReaders starts n connections of db that read the bank in a loop
// until ctx ends: every transaction must see the starting total twice and
// a TXID never below the connection's last. extra, if not nil, runs after
// each such transaction on the same connection. A violation, or an error
// other than ctx's end, goes to errs and ends that reader.
func startBankReaders(t *testing.T, ctx context.Context, db *sql.DB, n int, extra func(ctx context.Context, conn *sql.Conn) error) *bankReaders {
	t.Helper()
	b := &bankReaders{t: t, errs: make(chan error, n), reads: make([]int, n)}
	for r := range n {
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			defer conn.Close()
			var last int64
			for ctx.Err() == nil {
				t1, t2, txid, err := readSnapshot(ctx, conn)
				if err == nil && extra != nil {
					err = extra(ctx, conn)
				}
				switch {
				case ctx.Err() != nil:
					return
				case err != nil:
					b.errs <- fmt.Errorf("reader %d: %w", r, err)
					return
				case t1 != accounts*startBalance || t2 != t1:
					b.errs <- fmt.Errorf("reader %d at TXID %d saw totals %d and %d, want %d", r, txid, t1, t2, accounts*startBalance)
					return
				case txid < last:
					b.errs <- fmt.Errorf("reader %d: TXID went back from %d to %d", r, last, txid)
					return
				}
				last = txid
				b.reads[r]++
			}
		}()
	}
	return b
}

// stop waits for the readers (their ctx must have ended), fails the test
// with the first violation any saw, and returns the transactions each read.
func (b *bankReaders) stop() []int {
	b.t.Helper()
	b.wg.Wait()
	close(b.errs)
	for err := range b.errs {
		b.t.Fatal(err)
	}
	return b.reads
}

// TestInvariantTotalNeverChanges: a producer applies transfers as separate
// LTX files while several connections read in a loop. Every read
// transaction sees the same total, and a connection's TXID never goes back.
func TestInvariantTotalNeverChanges(t *testing.T) {
	e := newBank(t)
	db := e.openReplica("")
	db.SetMaxOpenConns(8)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	readers := startBankReaders(t, ctx, db, 4, nil)
	rng := rand.New(rand.NewSource(1))
	const transfers = 1500
	for i := 0; i < transfers; i++ {
		e.transfer(rng)
		select {
		case err := <-readers.errs:
			t.Fatal(err)
		default:
		}
	}
	want := int64(e.Pub.TXID)
	waitFor(t, "the replica to reach the last transfer", func() (bool, error) {
		var txid int64
		err := db.QueryRow("PRAGMA walrust_txid").Scan(&txid)
		return txid == want, err
	})
	cancel()
	reads := readers.stop()
	for r, n := range reads {
		if n == 0 {
			t.Errorf("reader %d completed no transaction", r)
		}
	}
	t.Logf("%d transfers; read transactions per reader: %v", transfers, reads)
}

// TestLongReaderDoesNotHoldBackReplication: one connection holds a read
// transaction open while 500 files are applied. It sees its snapshot
// unchanged to the end; meanwhile a second connection sees every new TXID
// promptly, and once the long reader ends the versions are folded away.
func TestLongReaderDoesNotHoldBackReplication(t *testing.T) {
	e := newBank(t)
	db := e.openReplica("")
	ctx := context.Background()
	long, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Close()
	other, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	snapshot := func(q interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}) (txid int64, notes string, err error) {
		// Read first: a deferred transaction pins its version at its first
		// read, and a PRAGMA before it would report the newest TXID.
		if err = q.QueryRowContext(ctx, "SELECT group_concat(balance || ':' || note, ',') FROM acct").Scan(&notes); err != nil {
			return
		}
		err = q.QueryRowContext(ctx, "PRAGMA walrust_txid").Scan(&txid)
		return
	}
	tx, err := long.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() // before long.Close, which waits for the transaction
	txid0, content0, err := snapshot(tx)
	if err != nil {
		t.Fatal(err)
	}

	rng := rand.New(rand.NewSource(2))
	for i := 0; i < 500; i++ {
		e.transfer(rng)
		want := int64(e.Pub.TXID)
		if i%50 == 49 { // check promptness regularly, not after every file
			testtool.Eventually(t, fmt.Sprintf("the second connection to reach TXID %d", want), 5*time.Second, func() error {
				var txid int64
				if err := other.QueryRowContext(ctx, "PRAGMA walrust_txid").Scan(&txid); err != nil {
					t.Fatal(err)
				}
				if txid != want {
					return fmt.Errorf("second connection stuck at TXID %d", txid)
				}
				return nil
			})
		}
	}
	txid1, content1, err := snapshot(tx)
	if err != nil {
		t.Fatal(err)
	}
	if txid1 != txid0 || content1 != content0 {
		t.Fatalf("long reader's snapshot changed: TXID %d → %d, content equal: %v", txid0, txid1, content0 == content1)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	// The versions held for the long reader are folded once it is gone.
	waitFor(t, "the log to be folded away", func() (bool, error) {
		entries, err := os.ReadDir(e.Path + "-replica-log")
		return len(entries) == 0, err
	})
	txid2, content2, err := snapshot(other)
	if err != nil {
		t.Fatal(err)
	}
	if txid2 != int64(e.Pub.TXID) || content2 == content0 {
		t.Fatalf("after the long reader: TXID %d (want %d), content changed: %v", txid2, e.Pub.TXID, content2 != content0)
	}
}
