package vfs

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestStalenessCacheIgnoresFutureTimes: before a follower's first
// confirmation (a new leader sets the lock file's time to the epoch),
// max_lag goes by the commit time of the replica's TXID, a time from the
// primary's clock. A primary whose clock is ahead of this machine's gives
// a time in the future; max_lag in the reader role cached it as the
// newest confirmation and, since no later confirmation is newer, trusted
// it for the whole skew plus the bound, however long ago the follower last
// confirmed the replica current afterwards (its store gone): reads of a
// replica staler than max_lag started.
func TestStalenessCacheIgnoresFutureTimes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replica.db")
	state, err := json.Marshal(map[string]any{
		"source": "file:///srv/store", "txid": "0000000000000005", "page_size": 4096, "commit": 2,
		"timestamp": time.Now().Add(time.Minute), // the primary's clock, a minute ahead
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+"-replica-state", state, 0o644); err != nil {
		t.Fatal(err)
	}
	lock := path + "-replica-lock"
	if err := os.WriteFile(lock, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(lock, time.Unix(0, 0), time.Unix(0, 0)); err != nil { // not confirmed yet
		t.Fatal(err)
	}
	s := &shared{path: path}
	if why := s.staleness(time.Second); why != "" {
		t.Fatalf("a replica whose commit is not yet a second old (by its time) refused: %s", why)
	}

	// The follower confirms it current, then its store goes away: no
	// confirmation for 3 s.
	last := time.Now().Add(-3 * time.Second)
	if err := os.Chtimes(lock, last, last); err != nil {
		t.Fatal(err)
	}
	if why := s.staleness(time.Second); why == "" {
		t.Fatal("a replica last confirmed current 3s ago passed max_lag 1s (a commit time from the primary's clock, ahead of this one, was trusted as a confirmation)")
	}
}
