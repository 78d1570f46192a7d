package e2e

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// TestMaxLag: with max_lag, read transactions fail while the replica has
// not been confirmed current for longer than the bound (its store is
// gone), with a log line that says it is stale and why, and succeed again
// once a poll confirms it current; a connection without the bound reads
// the last good state all along.
func TestMaxLag(t *testing.T) {
	w := newWorld(t, 4096, false)
	bounded := w.openReplica("&max_lag=300ms")
	bounded.SetMaxOpenConns(1)
	w.waitCaughtUp(bounded)
	free := openDB(t, w.followURI(""))
	count := func(db querier) error {
		_, err := tableRows(db)
		return err
	}
	if err := count(bounded); err != nil {
		t.Fatalf("a current replica refused a read: %v", err)
	}

	if err := os.Rename(w.StoreDir, w.StoreDir+".away"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "reads refused as stale", func() error {
		err := count(bounded)
		if err == nil {
			return errors.New("reads still succeed")
		}
		if !strings.Contains(err.Error(), "disk I/O error") {
			t.Fatalf("a stale read failed with %v; want disk I/O error", err)
		}
		return nil
	})
	logs := w.Logs.String()
	if !strings.Contains(logs, "the replica is stale: last confirmed current") || !strings.Contains(logs, "past max_lag 300ms; last poll error: ") {
		t.Fatalf("no log line says why reads are refused:\n%s", logs)
	}
	if err := count(free); err != nil {
		t.Fatalf("a connection without max_lag: %v", err)
	}

	if err := os.Rename(w.StoreDir+".away", w.StoreDir); err != nil {
		t.Fatal(err)
	}
	eventually(t, "reads again once current", func() error { return count(bounded) })
}

// TestMaxLagReaderRole: max_lag on a replica another follower leads (the
// reader role) goes by the confirmations that follower records in the
// lock file: reads fail once it has not confirmed the replica current
// within the bound (its store is gone), and succeed again once it has.
func TestMaxLagReaderRole(t *testing.T) {
	w := newWorld(t, 4096, false)
	followElsewhere(t, w)
	bounded := w.openReplica("&max_lag=300ms")
	bounded.SetMaxOpenConns(1)
	w.waitCaughtUp(bounded)
	var role string
	if err := bounded.QueryRow("SELECT json_extract(walrust_status(), '$.role')").Scan(&role); err != nil || role != "reader" {
		t.Fatalf("role %q, %v; want reader: the test needs another follower", role, err)
	}
	count := func() error {
		_, err := tableRows(bounded)
		return err
	}
	// An idle primary: the commit ages, the follower keeps confirming the
	// replica current, and the status says so, as max_lag sees it.
	time.Sleep(1500 * time.Millisecond)
	var raw string
	if err := bounded.QueryRow("PRAGMA walrust_status").Scan(&raw); err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatal(err)
	}
	if lag, _ := st["lag_seconds"].(float64); lag > 1 || st["confirmed_current"] == nil || st["last_poll"] != nil {
		t.Fatalf("reader role on an idle primary: %s; want lag_seconds under a second from the follower's confirmation, confirmed_current, no last_poll", raw)
	}
	if age, _ := st["commit_age_seconds"].(float64); age < 1.5 {
		t.Fatalf("commit_age_seconds %v after 1.5s idle", age)
	}

	// Many transactions while it is fresh (each may skip reading the
	// lock file), then the store goes away.
	for range 200 {
		if err := count(); err != nil {
			t.Fatalf("a current replica refused a read: %v", err)
		}
	}
	if err := os.Rename(w.StoreDir, w.StoreDir+".away"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "reads refused as stale", func() error {
		err := count()
		if err == nil {
			return errors.New("reads still succeed")
		}
		if !strings.Contains(err.Error(), "disk I/O error") {
			t.Fatalf("a stale read failed with %v; want disk I/O error", err)
		}
		return nil
	})
	if logs := w.Logs.String(); !strings.Contains(logs, "past max_lag 300ms; last poll error: see the status of the process that follows it") {
		t.Fatalf("no log line says why reads are refused:\n%s", logs)
	}
	if err := os.Rename(w.StoreDir+".away", w.StoreDir); err != nil {
		t.Fatal(err)
	}
	eventually(t, "reads again once current", count)
}
