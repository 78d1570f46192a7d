package main

import (
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// TestPromote is disaster recovery from end to end. A WAL-mode primary
// publishes 30 states; replicas A and B follow with walrust replicate, and
// C is a replica that stopped following. C, promoted at once while the old
// primary still publishes, is refused by its publish (the lineage would
// fork). Then the primary stops; promoting A is refused while its follower
// runs, and --force stops that follower, catches up and promotes: A is the
// primary's file, WAL mode and all, with no walrust file left beside it.
// A's writes, published to the same store, reach B without a bootstrap, and
// litestream restore of the store gives A's content.
func TestPromote(t *testing.T) {
	store := "file://" + filepath.Join(t.TempDir(), "store")
	primaryPath, primary := newDB(t, "wal")
	var head ltx.TXID
	for i := range 30 {
		mustExec(t, primary, fmt.Sprintf("INSERT INTO t (body) VALUES ('state %d')", i))
		head = publishOnce(t, primaryPath, store)
	}
	dir := t.TempDir()
	a, b, c := filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db"), filepath.Join(dir, "c.db")
	follower := func(db string) *proc {
		p := startWalrust(t, nil, "replicate", store, "--local", db, "--interval", "50ms")
		waitFolded(t, p, db, head)
		return p
	}
	followA, followB := follower(a), follower(b)
	follower(c).stop(os.Interrupt)

	// C, promoted while the old primary goes on publishing.
	mustRun(t, "promote", "--no-catch-up", c)
	mustExec(t, primary, "INSERT INTO t (body) VALUES ('after C was promoted')")
	head = publishOnce(t, primaryPath, store)
	cdb := openDB(t, c)
	mustExec(t, cdb, "INSERT INTO t (body) VALUES ('written on C')")
	_, errOut, code := walrust(t, "publish", c, store)
	if code != 1 || !strings.Contains(errOut, "promoted") || !strings.Contains(errOut, "--new-lineage") {
		t.Fatalf("publish of C after the store moved on: exit %d\n%s", code, errOut)
	}
	if got := latestTXID(t, store); got != head {
		t.Fatalf("the store ends at TXID %d after the refused publish, want %d", got, head)
	}

	// The primary is lost. A is promoted.
	waitFolded(t, followA, a, head)
	_, errOut, code = walrust(t, "promote", a)
	if pid := fmt.Sprint(followA.cmd.Process.Pid); code != 1 || !strings.Contains(errOut, "followed by process "+pid) {
		t.Fatalf("promote of a followed replica: exit %d (want 1, naming process %s)\n%s", code, pid, errOut)
	}
	out := mustRun(t, "promote", "--force", a)
	if !regexp.MustCompile(fmt.Sprintf(`Promoted .*a\.db at TXID %d .*WAL mode`, head)).MatchString(out) {
		t.Fatalf("promote printed:\n%s", out)
	}
	<-followA.done // promote --force waited for it
	if code := followA.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("A's follower, stopped by promote --force, exited %d:\n%s", code, followA)
	}
	if left, _ := filepath.Glob(a + "-replica*"); len(left) > 0 {
		t.Fatalf("promote left %v", left)
	}
	adb := openDB(t, a)
	var mode string
	if err := adb.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("promoted journal_mode %q (%v), want wal", mode, err)
	}
	if want, got := testtool.ContentHash(t, primary), testtool.ContentHash(t, adb); want != got {
		t.Fatal("the promoted database differs from the last published state")
	}

	// The new primary publishes; B follows without starting over.
	mustExec(t, adb, "INSERT INTO t (body) VALUES ('written on A')", "UPDATE t SET body = 'changed on A' WHERE id = 3")
	out = mustRun(t, "publish", a, store)
	if !strings.HasPrefix(out, fmt.Sprintf("Published %s ", ltx.FormatFilename(head+1, head+1))) {
		t.Fatalf("the first publish from A is not TXID %d at level 0:\n%s", head+1, out)
	}
	waitFolded(t, followB, b, head+1)
	if n := strings.Count(followB.stdout.String(), "Bootstrapping from snapshot"); n != 1 {
		t.Fatalf("B bootstrapped %d times, want once:\n%s", n, followB)
	}
	checkReplica(t, adb, b)
	restored := filepath.Join(t.TempDir(), "restored.db")
	cmd := exec.Command(testtool.Built(t, "litestream"), "restore", "-o", restored, store)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("litestream restore: %v\n%s", err, b)
	}
	if want, got := testtool.ContentHash(t, adb), testtool.ContentHash(t, openDB(t, restored)); want != got {
		t.Fatal("litestream restore of the store differs from the promoted database")
	}
}

// openDB opens a database for reading and writing, closed at cleanup.
func openDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

// latestTXID is the newest TXID walrust status says the store holds.
func latestTXID(t *testing.T, store string) ltx.TXID {
	t.Helper()
	out := mustRun(t, "status", store)
	m := regexp.MustCompile(`(?m)^Newest: +TXID (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("status printed:\n%s", out)
	}
	var txid uint64
	fmt.Sscan(m[1], &txid)
	return ltx.TXID(txid)
}
