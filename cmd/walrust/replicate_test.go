package main

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/superfly/ltx"
	"github.com/walrust/walrust/vfs/testkit/s3test"
	"github.com/walrust/walrust/vfs/testkit/testtool"
)

var bootstrapOutput = regexp.MustCompile(`^Bootstrapping from snapshot\.\.\.\n` +
	`Downloaded 0000000000000001-0000000000000001\.ltx \([0-9.]+ [KM]?B in [0-9.]+[µm]?s\)\n` +
	`Applied \d+ pages, TXID 1\n` +
	`Polling for updates every 50ms\.\.\.\n$`)

// Publish → replicate round trips, for a rollback-journal and a WAL
// primary: a bootstrap, changes, a VACUUM that shrinks the database, and
// (rollback only: WAL databases cannot change it) a page size change, which
// the publisher sends as a new snapshot and the replica follows by
// re-bootstrapping.
func TestReplicateRoundTrip(t *testing.T) {
	for _, mode := range []string{"delete", "wal"} {
		t.Run(mode, func(t *testing.T) {
			path, db := newDB(t, mode)
			addContent(t, db, 300)
			url := "file://" + t.TempDir()
			publishOnce(t, path, url)
			replica := filepath.Join(t.TempDir(), "replica.db")

			p := startWalrust(t, nil, "replicate", url, "--local", replica, "--interval", "50ms")
			p.waitFor(&p.stdout, `Polling for updates`)
			if out := p.stdout.String(); !bootstrapOutput.MatchString(out) {
				t.Fatalf("bootstrap printed:\n%s", out)
			}
			waitFolded(t, p, replica, 1)
			checkReplica(t, db, replica)

			mustExec(t, db,
				"UPDATE t SET body = upper(body) WHERE id % 3 = 0",
				"DELETE FROM t WHERE id % 5 = 0",
				"INSERT INTO blobs VALUES ('new', randomblob(20000), NULL)")
			if txid := publishOnce(t, path, url); txid != 2 {
				t.Fatalf("published TXID %d", txid)
			}
			p.waitFor(&p.stdout, `\nApplied 0000000000000002-0000000000000002\.ltx: \d+ pages, TXID 2\n`)
			waitFolded(t, p, replica, 2)
			before := checkReplica(t, db, replica)

			mustExec(t, db, "DELETE FROM blobs WHERE rowid % 4 != 0", "VACUUM")
			publishOnce(t, path, url)
			p.waitFor(&p.stdout, `\nApplied 0000000000000003-0000000000000003\.ltx: \d+ pages?, TXID 3\n`)
			waitFolded(t, p, replica, 3)
			if after := checkReplica(t, db, replica); after >= before {
				t.Fatalf("after VACUUM the replica has %d bytes, before %d", after, before)
			}
			last := ltx.TXID(3)

			if mode == "delete" {
				mustExec(t, db, "PRAGMA page_size = 8192", "VACUUM")
				out := mustRun(t, "publish", path, url)
				if !strings.HasPrefix(out, "Published snapshot 0000000000000001-0000000000000004.ltx") || !strings.Contains(out, "page size changed from 4096 to 8192") {
					t.Fatalf("publish after the page size change printed %q", out)
				}
				// The snapshot alone is not in L0, which is all an idle
				// follower lists; the next change shows the gap.
				mustExec(t, db, "INSERT INTO t (body) VALUES ('after the page size change')")
				publishOnce(t, path, url)
				p.waitFor(&p.stdout, `\nRe-bootstrapping: no chain of LTX files leads from TXID 3 to the store's newest TXID; starting over from snapshot 0000000000000001-0000000000000004\.ltx\n`+
					`Bootstrapping from snapshot\.\.\.\n`+
					`Downloaded 0000000000000001-0000000000000004\.ltx \([^)]*\)\n`+
					`Applied \d+ pages, TXID 4\n`+
					`Applied 0000000000000005-0000000000000005\.ltx: \d+ pages?, TXID 5\n`)
				waitFolded(t, p, replica, 5)
				checkReplica(t, db, replica)
				last = 5
			}

			if code := p.stop(syscall.SIGINT); code != 0 {
				t.Fatalf("exit %d after SIGINT:\n%s", code, p)
			}
			if want := fmt.Sprintf("\nStopped at TXID %d (%s)\n", last, replica); !strings.HasSuffix(p.stdout.String(), want) {
				t.Fatalf("output does not end with %q:\n%s", want, p)
			}
			if s := p.stderr.String(); s != "" {
				t.Fatalf("stderr: %s", s)
			}
			checkReplica(t, db, replica)
		})
	}
}

// A replicate killed with SIGKILL resumes from its TXID at the next start,
// without the snapshot (which the store no longer holds).
func TestReplicateResume(t *testing.T) {
	path, db := newDB(t, "wal")
	addContent(t, db, 1000) // about 4 MB
	dir := t.TempDir()
	url := "file://" + dir
	publishOnce(t, path, url)
	replica := filepath.Join(t.TempDir(), "replica.db")

	p := startWalrust(t, nil, "replicate", url, "--local", replica, "--interval", "50ms")
	bootstrap := p.waitFor(&p.stdout, `Polling for updates`)
	mustExec(t, db, "UPDATE blobs SET n = -n WHERE rowid < 100")
	publishOnce(t, path, url)
	waitFolded(t, p, replica, 2)
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.done

	mustExec(t, db, "INSERT INTO t (body) VALUES ('three')")
	publishOnce(t, path, url)
	mustExec(t, db, "DELETE FROM blobs WHERE rowid > 900")
	publishOnce(t, path, url)
	snapshot := filepath.Join(dir, "ltx", "9", "0000000000000001-0000000000000001.ltx")
	if err := os.Remove(snapshot); err != nil {
		t.Fatal(err)
	}

	p = startWalrust(t, nil, "replicate", url, "--local", replica, "--interval", "50ms")
	resume := p.waitFor(&p.stdout, `Polling for updates`)
	want := regexp.MustCompile(`^Resuming from TXID 2 \(` + regexp.QuoteMeta(replica) + `\)\n` +
		`Applied 0000000000000003-0000000000000003\.ltx: \d+ pages?, TXID 3\n` +
		`Applied 0000000000000004-0000000000000004\.ltx: \d+ pages?, TXID 4\n` +
		`Polling for updates every 50ms\.\.\.\n$`)
	if out := p.stdout.String(); !want.MatchString(out) {
		t.Fatalf("restart printed:\n%s", p)
	}
	waitFolded(t, p, replica, 4)
	checkReplica(t, db, replica)
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d after SIGTERM:\n%s", code, p)
	}
	fi, err := os.Stat(replica)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s replica: bootstrap to polling %s, resume to polling %s", formatBytes(fi.Size()), bootstrap.Round(time.Millisecond), resume.Round(time.Millisecond))
}

// A replica whose next files are gone from the store (retention) while a
// newer snapshot exists re-bootstraps from it and converges.
func TestReplicateGap(t *testing.T) {
	path, db := newDB(t, "delete")
	dir := t.TempDir()
	url := "file://" + dir
	publishOnce(t, path, url)
	replica := filepath.Join(t.TempDir(), "replica.db")
	p := startWalrust(t, nil, "replicate", url, "--local", replica, "--interval", "50ms")
	p.waitFor(&p.stdout, `Polling for updates`)
	waitFolded(t, p, replica, 1)
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p)
	}

	// TXIDs 2 and 3 are published and then lost before the replica saw them;
	// the publisher, no longer finding its last file, writes a snapshot.
	for i := range 2 {
		mustExec(t, db, fmt.Sprintf("INSERT INTO t (body) VALUES ('lost %d')", i))
		publishOnce(t, path, url)
	}
	for _, name := range []string{"0000000000000002-0000000000000002.ltx", "0000000000000003-0000000000000003.ltx"} {
		if err := os.Remove(filepath.Join(dir, "ltx", "0", name)); err != nil {
			t.Fatal(err)
		}
	}
	mustExec(t, db, "UPDATE t SET body = 'four' WHERE id < 10")
	if out := mustRun(t, "publish", path, url); !strings.HasPrefix(out, "Published snapshot 0000000000000001-0000000000000004.ltx") {
		t.Fatalf("publish after the loss printed %q", out)
	}
	mustExec(t, db, "DELETE FROM t WHERE id > 250")
	publishOnce(t, path, url)

	p = startWalrust(t, nil, "replicate", url, "--local", replica, "--interval", "50ms")
	p.waitFor(&p.stdout, `Polling for updates`)
	want := regexp.MustCompile(`^Resuming from TXID 1 \(.*\)\n` +
		`Re-bootstrapping: no chain of LTX files leads from TXID 1 to the store's newest TXID; starting over from snapshot 0000000000000001-0000000000000004\.ltx\n` +
		`Bootstrapping from snapshot\.\.\.\n` +
		`Downloaded 0000000000000001-0000000000000004\.ltx \([^)]*\)\n` +
		`Applied \d+ pages, TXID 4\n` +
		`Applied 0000000000000005-0000000000000005\.ltx: \d+ pages?, TXID 5\n` +
		`Polling for updates every 50ms\.\.\.\n$`)
	if !want.MatchString(p.stdout.String()) {
		t.Fatalf("after the gap:\n%s", p)
	}
	waitFolded(t, p, replica, 5)
	checkReplica(t, db, replica)
	if code := p.stop(syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p)
	}
}

// An empty store is reported once, not at every poll; SIGINT and SIGTERM
// end the command with exit code 0 whatever the interval.
func TestReplicateSignals(t *testing.T) {
	for _, tc := range []struct {
		interval string
		sig      syscall.Signal
	}{{"500ms", syscall.SIGINT}, {"1s", syscall.SIGTERM}, {"60s", syscall.SIGINT}, {"5m", syscall.SIGTERM}} {
		t.Run(tc.interval, func(t *testing.T) {
			dir := t.TempDir()
			replica := filepath.Join(dir, "replica.db")
			p := startWalrust(t, nil, "replicate", "file://"+dir, "--local", replica, "--interval", tc.interval)
			p.waitFor(&p.stderr, `Error: .*the store has no snapshot yet`)
			if code := p.stop(tc.sig); code != 0 {
				t.Fatalf("exit %d after %s:\n%s", code, tc.sig, p)
			}
			if out := p.stdout.String(); out != "Stopped before any snapshot was installed ("+replica+")\n" {
				t.Fatalf("stdout %q", out)
			}
		})
	}
}

// A failing poll prints one line when it starts and one when it clears,
// however many polls fail in between.
func TestReplicateErrorStartAndClear(t *testing.T) {
	path, _ := newDB(t, "wal")
	dir := t.TempDir()
	replica := filepath.Join(t.TempDir(), "replica.db")
	p := startWalrust(t, nil, "replicate", "file://"+dir, "--local", replica, "--interval", "20ms")
	p.waitFor(&p.stderr, `Error: `)
	time.Sleep(500 * time.Millisecond) // some 25 more failing polls
	want := fmt.Sprintf("Error: bootstrap from file://%s: the store has no snapshot yet (level 9 is empty); retrying every 20ms\n", dir)
	if s := p.stderr.String(); s != want {
		t.Fatalf("stderr after failing polls:\n%q\nwant\n%q", s, want)
	}
	publishOnce(t, path, "file://"+dir)
	p.waitFor(&p.stdout, `Polling for updates`)
	p.waitFor(&p.stderr, `\nRecovered: polls succeed again \(after \d+s of errors\)\n$`)
	if !bootstrapOutput.MatchString(strings.ReplaceAll(p.stdout.String(), "20ms", "50ms")) {
		t.Fatalf("stdout:\n%s", p)
	}
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p)
	}
}

// A file that fails verification is reported, never applied; the replica
// keeps its last good state.
func TestReplicateRejects(t *testing.T) {
	path, db := newDB(t, "delete")
	dir := t.TempDir()
	url := "file://" + dir
	publishOnce(t, path, url)
	good := testtool.ContentHash(t, db)
	mustExec(t, db, "UPDATE t SET body = 'x'")
	publishOnce(t, path, url)
	file := filepath.Join(dir, "ltx", "0", "0000000000000002-0000000000000002.ltx")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}

	replica := filepath.Join(t.TempDir(), "replica.db")
	p := startWalrust(t, nil, "replicate", url, "--local", replica, "--interval", "20ms")
	p.waitFor(&p.stderr, `Rejected L0/0000000000000002-0000000000000002\.ltx: .* \(the replica keeps its last good state\)\n`)
	time.Sleep(300 * time.Millisecond)
	if n := strings.Count(p.stderr.String(), "Rejected"); n != 1 {
		t.Fatalf("%d rejections printed:\n%s", n, p)
	}
	if strings.Contains(p.stdout.String(), "TXID 2") {
		t.Fatalf("applied a bad file:\n%s", p)
	}
	if code := p.stop(syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p)
	}
	if !strings.HasSuffix(p.stdout.String(), "Stopped at TXID 1 ("+replica+")\n") {
		t.Fatalf("stdout:\n%s", p)
	}
	rdb, err := sql.Open("sqlite3", "file:"+replica+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if got := testtool.ContentHash(t, rdb); got != good {
		t.Fatal("the replica does not hold TXID 1's content")
	}
}

func TestReplicateUsageErrors(t *testing.T) {
	dir := t.TempDir()
	src := "file://" + dir
	local := filepath.Join(dir, "replica.db")
	for _, args := range [][]string{
		{"replicate"},
		{"replicate", "--local", local},
		{"replicate", src},
		{"replicate", src, "--local"},
		{"replicate", src, "--local", local, "extra"},
		{"replicate", src, "--local", local, "--bogus"},
		{"replicate", src, "--local", local, "--interval"},
		{"replicate", src, "--local", local, "--interval", "soon"},
		{"replicate", src, "--local", local, "--interval", "5"},
		{"replicate", src, "--local", local, "--interval", "-1s"},
		{"replicate", src, "--local", local, "--interval", "0"},
		{"replicate", src, "--local", local, "--interval", "1ms"},
		{"replicate", src, "--local", local, "--path-style=sometimes"},
		{"replicate", "relative/dir", "--local", local},
		{"replicate", dir, "--local", local},
		{"replicate", "http://example.com/x", "--local", local},
		{"replicate", "file://host/dir", "--local", local},
		{"replicate", "s3://", "--local", local},
	} {
		out, errOut, code := walrust(t, args...)
		if code != 2 || out != "" || !strings.Contains(errOut, "Usage: walrust replicate SOURCE --local DB [flags]") {
			t.Errorf("walrust %s: exit %d, stdout %q, stderr %q; want exit 2 and usage on stderr", strings.Join(args, " "), code, out, errOut)
		}
	}
	if _, err := os.Stat(local + "-replica-log"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a usage error left %s-replica-log behind (%v)", local, err)
	}
	out, errOut, code := walrust(t, "replicate", "--help")
	if code != 0 || errOut != "" || !strings.HasPrefix(out, "Usage: walrust replicate SOURCE --local DB [flags]") ||
		!strings.Contains(out, "sqlite3 'file:DB?mode=ro'") || !strings.Contains(out, "--interval DURATION") {
		t.Errorf("replicate --help: exit %d, stderr %q:\n%s", code, errOut, out)
	}
}

// Replicas that replica.Open refuses, and stores that cannot be opened, are
// runtime failures (exit 1) with a message, and leave nothing behind.
func TestReplicateRefused(t *testing.T) {
	path, _ := newDB(t, "wal")
	storeDir := t.TempDir()
	url := "file://" + storeDir
	publishOnce(t, path, url)
	other := t.TempDir()
	publishOnce(t, path, "file://"+other)

	// A replica of the store, stopped.
	replica := filepath.Join(t.TempDir(), "replica.db")
	p := startWalrust(t, nil, "replicate", url, "--local", replica, "--interval", "50ms")
	p.waitFor(&p.stdout, `Polling for updates`)
	if code := p.stop(syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p)
	}
	missing := filepath.Join(t.TempDir(), "new.db")
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{url, "--local", path}, "was not made by walrust; refusing to overwrite it"},
		{[]string{"file://" + other, "--local", replica}, "follows " + url},
		{[]string{url, "--local", t.TempDir()}, "is a directory"},
		{[]string{"file://" + filepath.Join(storeDir, "missing"), "--local", missing}, "directory does not exist"},
	} {
		out, errOut, code := walrust(t, append([]string{"replicate"}, tc.args...)...)
		if code != 1 || out != "" || !strings.HasPrefix(errOut, "walrust replicate: ") || !strings.Contains(errOut, tc.msg) || strings.Contains(errOut, "Usage:") {
			t.Errorf("walrust replicate %s: exit %d, stdout %q, stderr %q; want exit 1 and %q", strings.Join(tc.args, " "), code, out, errOut, tc.msg)
		}
	}
	for _, leftover := range []string{missing, missing + "-replica-log", missing + "-replica-state", missing + "-replica-lock"} {
		if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists after a failed start (%v)", leftover, err)
		}
	}
	// The refusals did not harm the replica: it resumes.
	p = startWalrust(t, nil, "replicate", url+"/", "--local", replica, "--interval", "50ms")
	p.waitFor(&p.stdout, `^Resuming from TXID 1 .*\nPolling for updates`)
	if code := p.stop(syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p)
	}
}

// Replicating from a real S3 server, with the S3 options as flags.
func TestReplicateS3(t *testing.T) {
	srv := s3test.Start(t, "bucket")
	env, flags := s3Args(srv)
	path, db := newDB(t, "wal")
	addContent(t, db, 100)
	publish := func() {
		t.Helper()
		out, errOut, code := walrustEnv(t, env, append([]string{"publish", path, "s3://bucket/app"}, flags...)...)
		if code != 0 {
			t.Fatalf("publish: exit %d\n%s%s", code, out, errOut)
		}
	}
	publish()
	replica := filepath.Join(t.TempDir(), "replica.db")
	p := startWalrust(t, env, append([]string{"replicate", "s3://bucket/app", "--local", replica, "--interval", "50ms"}, flags...)...)
	p.waitFor(&p.stdout, `Polling for updates`)
	if !bootstrapOutput.MatchString(p.stdout.String()) {
		t.Fatalf("bootstrap from S3:\n%s", p)
	}
	mustExec(t, db, "DELETE FROM blobs WHERE rowid % 2 = 0")
	publish()
	p.waitFor(&p.stdout, `\nApplied 0000000000000002-0000000000000002\.ltx: \d+ pages?, TXID 2\n`)
	waitFolded(t, p, replica, 2)
	checkReplica(t, db, replica)
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p)
	}
	if s := p.stderr.String(); s != "" {
		t.Fatalf("stderr: %s", s)
	}
}

// A store that does not answer at start is waited for, not a reason to
// exit: replicate says why once, bootstraps when the server is back, and
// says that it recovered.
func TestReplicateS3Unreachable(t *testing.T) {
	srv := s3test.Start(t, "bucket")
	env, flags := s3Args(srv)
	path, db := newDB(t, "wal")
	addContent(t, db, 20)
	if out, errOut, code := walrustEnv(t, env, append([]string{"publish", path, "s3://bucket/app"}, flags...)...); code != 0 {
		t.Fatalf("publish: exit %d\n%s%s", code, out, errOut)
	}
	srv.Stop()
	replica := filepath.Join(t.TempDir(), "replica.db")
	p := startWalrust(t, env, append([]string{"replicate", "s3://bucket/app", "--local", replica, "--interval", "50ms"}, flags...)...)
	p.waitFor(&p.stderr, `Error: .*connection refused.*; retrying every 50ms\n`)
	srv.Restart()
	p.waitFor(&p.stdout, `Polling for updates`)
	p.waitFor(&p.stderr, `\nRecovered: polls succeed again`)
	if !bootstrapOutput.MatchString(p.stdout.String()) {
		t.Fatalf("bootstrap after the outage:\n%s", p)
	}
	checkReplica(t, db, replica)
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p)
	}
}

// One process follows a replica at a time: a second replicate waits, takes
// over when the first dies, and resumes where it left off; one interrupted
// while waiting exits 0.
func TestReplicateTakeOver(t *testing.T) {
	path, db := newDB(t, "wal")
	url := "file://" + t.TempDir()
	publishOnce(t, path, url)
	replica := filepath.Join(t.TempDir(), "replica.db")
	args := []string{"replicate", url, "--local", replica, "--interval", "50ms"}

	first := startWalrust(t, nil, args...)
	first.waitFor(&first.stdout, `Polling for updates`)
	second := startWalrust(t, nil, args...)
	second.waitFor(&second.stdout, `^Another process follows `+regexp.QuoteMeta(replica)+` \(it holds replica\.db-replica-lock\); waiting to take over\.\.\.\n$`)
	third := startWalrust(t, nil, args...)
	third.waitFor(&third.stdout, `waiting to take over`)
	if code := third.stop(syscall.SIGTERM); code != 0 || !strings.HasSuffix(third.stdout.String(), "\nStopped while another process followed "+replica+"\n") {
		t.Fatalf("exit %d:\n%s", code, third)
	}

	mustExec(t, db, "INSERT INTO t (body) VALUES ('two')")
	publishOnce(t, path, url)
	first.waitFor(&first.stdout, `TXID 2\n`)
	waitFolded(t, first, replica, 2)
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-first.done

	second.waitFor(&second.stdout, `\nTook over following `+regexp.QuoteMeta(replica)+`\nResuming from TXID 2 \(.*\)\nPolling for updates`)
	mustExec(t, db, "DELETE FROM t WHERE id < 100")
	publishOnce(t, path, url)
	second.waitFor(&second.stdout, `\nApplied 0000000000000003-0000000000000003\.ltx: \d+ pages?, TXID 3\n`)
	waitFolded(t, second, replica, 3)
	checkReplica(t, db, replica)
	if code := second.stop(syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d:\n%s", code, second)
	}
	if strings.Contains(second.stdout.String(), "Bootstrapping") {
		t.Fatalf("the second replicate downloaded the snapshot again:\n%s", second)
	}
}
