package main

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"
	"github.com/walrust/walrust/vfs/testkit/s3test"
	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// Helpers for the replicate tests: walrust processes in the background,
// and checks of a replica against its primary.

// proc is a walrust command running in the background until the test ends.
type proc struct {
	t           *testing.T
	args        []string
	cmd         *exec.Cmd
	stdout      testtool.Buffer
	stderr      testtool.Buffer
	done        chan struct{}
	waitErr     error
	started     time.Time
	stopTimeout time.Duration
}

// startWalrust starts the command with args; the test's cleanup kills it
// if it still runs.
func startWalrust(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, args: args, done: make(chan struct{}), stopTimeout: 20 * time.Second}
	p.cmd = exec.Command(binary, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *proc) String() string {
	return fmt.Sprintf("walrust %s\n--- stdout:\n%s--- stderr:\n%s", strings.Join(p.args, " "), p.stdout.String(), p.stderr.String())
}

// waitFor waits until the output (stdout, or stderr) matches re, and
// returns how long after the start that was.
func (p *proc) waitFor(out *testtool.Buffer, re string) time.Duration {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	var at time.Duration
	testtool.Eventually(p.t, fmt.Sprintf("%q", re), 30*time.Second, func() error {
		exited := false
		select {
		case <-p.done:
			exited = true
		default:
		}
		if rx.MatchString(out.String()) {
			at = time.Since(p.started)
			return nil
		}
		if exited {
			p.t.Fatalf("exited (%v) before printing %q:\n%s", p.waitErr, re, p)
		}
		return fmt.Errorf("not printed yet:\n%s", p)
	})
	return at
}

// stop sends sig and returns the exit code.
func (p *proc) stop(sig os.Signal) int {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(p.stopTimeout):
		p.t.Fatalf("still running %s after %s:\n%s", sig, p.stopTimeout, p)
	}
	var exit *exec.ExitError
	switch {
	case p.waitErr == nil:
		return 0
	case errors.As(p.waitErr, &exit) && exit.ExitCode() >= 0:
		return exit.ExitCode()
	default:
		p.t.Fatalf("%v:\n%s", p.waitErr, p)
		return -1
	}
}

// replicaTXID is the TXID the replica's state file says its base file holds
// (0 before the first bootstrap).
func replicaTXID(t *testing.T, path string) ltx.TXID {
	t.Helper()
	b, err := os.ReadFile(path + "-replica-state")
	if errors.Is(err, os.ErrNotExist) {
		return 0
	} else if err != nil {
		t.Fatal(err)
	}
	var s struct {
		TXID ltx.TXID `json:"txid"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("%s-replica-state: %v\n%s", path, err, b)
	}
	return s.TXID
}

// waitFolded waits until the replica's base file holds txid, so that a
// plain SQLite reader sees it.
func waitFolded(t *testing.T, p *proc, path string, txid ltx.TXID) {
	t.Helper()
	testtool.Eventually(t, fmt.Sprintf("%s to hold TXID %d", path, txid), 30*time.Second, func() error {
		if got := replicaTXID(t, path); got != txid {
			return fmt.Errorf("it holds TXID %d:\n%s", got, p)
		}
		return nil
	})
}

// publishOnce publishes db's changes, which there must be, and returns the
// published TXID.
func publishOnce(t *testing.T, db, url string) ltx.TXID {
	t.Helper()
	out := mustRun(t, "publish", db, url)
	m := regexp.MustCompile(`^Published .* TXID (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("publish printed %q", out)
	}
	var txid uint64
	fmt.Sscan(m[1], &txid)
	return ltx.TXID(txid)
}

func mustExec(t *testing.T, db *sql.DB, queries ...string) {
	t.Helper()
	for _, q := range queries {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// checkReplica opens the replica's base file read-only with plain SQLite and
// compares it with the primary: integrity, content, page size and size.
func checkReplica(t *testing.T, primary *sql.DB, path string) (size int64) {
	t.Helper()
	rdb, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	var ok string
	if err := rdb.QueryRow("PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("replica integrity_check: %q, %v", ok, err)
	}
	if a, b := testtool.ContentHash(t, primary), testtool.ContentHash(t, rdb); a != b {
		t.Fatalf("replica content differs from the primary's")
	}
	var pageSize, pages int64
	if err := primary.QueryRow("PRAGMA page_size").Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	if err := primary.QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	var rPageSize int64
	if err := rdb.QueryRow("PRAGMA page_size").Scan(&rPageSize); err != nil || rPageSize != pageSize {
		t.Fatalf("replica page size %d (%v), primary %d", rPageSize, err, pageSize)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != pageSize*pages {
		t.Fatalf("replica is %d bytes, the primary %d pages of %d", fi.Size(), pages, pageSize)
	}
	for _, suffix := range []string{"-journal", "-wal", "-shm"} {
		if _, err := os.Stat(path + suffix); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s%s exists (%v)", path, suffix, err)
		}
	}
	return fi.Size()
}

// addContent gives a test database a second table with overflow pages and
// an index, so that snapshots and deltas have some shape.
func addContent(t *testing.T, db *sql.DB, rows int) {
	t.Helper()
	mustExec(t, db,
		"CREATE TABLE blobs (k TEXT PRIMARY KEY, v BLOB, n REAL)",
		"CREATE INDEX t_body ON t (body)",
		fmt.Sprintf(`WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < %d)
			INSERT INTO blobs SELECT 'k' || i, randomblob(3000 + i %% 7 * 500), i / 3.0 FROM c`, rows))
}

// s3Args are the environment (credentials) and flags (endpoint, region,
// path-style) that point walrust at srv.
func s3Args(srv *s3test.Server) (env, flags []string) {
	return []string{"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey},
		[]string{"--endpoint", srv.Endpoint, "--region", "us-east-1", "--path-style"}
}
