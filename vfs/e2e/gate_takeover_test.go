package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/walrust/walrust/vfs/internal/testhooks"
)

// TestGateAfterTakeover: connections opened while another follower held
// the replica (the passive role, whose transactions never begin at the
// gate) begin at the gate once this process takes over following, and
// read the newest rows there; a transaction begun passively before the
// takeover keeps its own rows throughout.
func TestGateAfterTakeover(t *testing.T) {
	e := newWorld(t, 4096, false)
	for i := range 100 {
		e.Ref.Exec("INSERT INTO t (v) VALUES (?)", fmt.Sprintf("%04d %0300d", i, i))
	}
	e.Commit()
	stopOther := followElsewhere(t, e)
	db := e.openReplica("")
	ctx := context.Background()
	conn := dbConn(t, db)
	role := func() string {
		var s string
		if err := conn.QueryRowContext(ctx, "PRAGMA walrust_status").Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s := role(); !strings.Contains(s, `"role":"reader"`) {
		t.Fatalf("with another follower, the status says %s", s)
	}
	long := beginTx(t, dbConn(t, db))
	var n int
	if err := long.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 100 {
		t.Fatalf("the passive transaction: %d rows, %v", n, err)
	}
	stopOther()
	waitFor(t, "the takeover", func() (bool, error) {
		return strings.Contains(role(), `"role":"follower"`), nil
	})
	e.Ref.Exec("INSERT INTO t (v) VALUES ('new')")
	e.Commit()
	waitFor(t, "the new row", func() (bool, error) {
		err := conn.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n)
		return n == 101, err
	})
	gated := testhooks.GatedTransactions()
	waitFor(t, "transactions at the gate", func() (bool, error) {
		err := conn.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n)
		if err != nil || n != 101 {
			return false, fmt.Errorf("%d rows, %v; want 101", n, err)
		}
		return testhooks.GatedTransactions()-gated >= 3, nil
	})
	if err := long.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 100 {
		t.Fatalf("the transaction begun passively: %d rows, %v; want its own 100", n, err)
	}
}
