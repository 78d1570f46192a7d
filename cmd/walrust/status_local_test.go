package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walrust/walrust/vfs/replica"
)

// TestStatusLocalNoReplica: status --local on a path no follower has
// bootstrapped says so, names the command that does, and exits 1; with
// --json it prints no bootstrap under way and stale.
func TestStatusLocalNoReplica(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replica.db")
	stdout, stderr, code := walrust(t, "status", "--local", path)
	if code != 1 || stdout != "" || !strings.Contains(stderr, path+" has no replica yet") || !strings.Contains(stderr, "walrust replicate SOURCE --local "+path) {
		t.Fatalf("exit %d, stdout %q, stderr %q; want exit 1 and no replica yet", code, stdout, stderr)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(path), "plain.db"), []byte("SQLite format 3\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(filepath.Dir(path), "plain.db")
	if _, stderr, code := walrust(t, "status", "--local", plain); code != 1 || !strings.Contains(stderr, plain+" is not a walrust replica: it has no plain.db-replica-state") {
		t.Errorf("a plain database: exit %d, stderr %q; want exit 1 and not a walrust replica", code, stderr)
	}
	stdout, _, code = walrust(t, "status", "--local", path, "--json")
	var r struct {
		Path          string          `json:"path"`
		Bootstrapping json.RawMessage `json:"bootstrapping"`
		Stale         bool            `json:"stale"`
	}
	if err := json.Unmarshal([]byte(stdout), &r); err != nil || code != 1 || r.Path != path || string(r.Bootstrapping) != "null" || !r.Stale {
		t.Fatalf("--json: exit %d, %+v, %v:\n%s", code, r, err, stdout)
	}
}

// TestStatusLocalBootstrapping: a lazy bootstrap under way is shown from
// its checkpoint (vfs/replica's TestHydrateCrash checks what
// InspectHydration reads from one): progress, and whether a follower runs.
func TestStatusLocalBootstrapping(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		h    replica.Hydrating
		want []string
	}{
		{replica.Hydrating{TXID: 0x2a, PagesLocal: 16384, Pages: 65536, Checkpointed: now.Add(-1500 * time.Millisecond), Follower: 77, Following: true},
			[]string{"Bootstrap: lazy, from the snapshot of TXID 42: 16384 of 65536 pages (25.0%) local at its last checkpoint, 1.5s ago\n", "Follower:  process 77\n", "Status:    BOOTSTRAPPING"}},
		{replica.Hydrating{TXID: 7, Checkpointed: now.Add(-time.Minute), Follower: 77},
			[]string{"TXID 7: 0 pages local at its last checkpoint, 1m0s ago\n", "Follower:  none runs: the bootstrap resumes from its checkpoint when one starts\n"}},
	} {
		r := bootstrapReport{Path: "/srv/replica.db", Bootstrapping: &c.h, Stale: true}
		var b strings.Builder
		r.print(&b, now)
		if !strings.HasPrefix(b.String(), "Replica:   /srv/replica.db\n") {
			t.Errorf("%+v: no Replica line:\n%s", c.h, &b)
		}
		for _, w := range c.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("%+v: lacks %q:\n%s", c.h, w, &b)
			}
		}
	}
}

// TestFlagErrors: a flag's error names it with two dashes, as the help
// does, and a bad duration gives examples (the flag package says "parse
// error").
func TestFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"status", "--local", "x.db", "--max-lag", "bogus"}, `invalid value "bogus" for flag --max-lag: not a duration (examples: 500ms`},
		{[]string{"publish", "a.db", "file:///tmp", "--snapshot-interval", "daily"}, `for flag --snapshot-interval: not a duration (examples: `},
		{[]string{"replicate", "file:///tmp", "--local"}, "flag needs an argument: --local\n"},
		{[]string{"publish", "a.db", "file:///tmp", "--bogus"}, "flag provided but not defined: --bogus\n"},
	} {
		_, stderr, code := walrust(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("walrust %s: exit %d, stderr %q; want exit 2 and %q", strings.Join(c.args, " "), code, stderr, c.want)
		}
	}
}
