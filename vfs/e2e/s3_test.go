package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/ltxtest"
	"github.com/walrust/walrust/vfs/testkit/s3test"
	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// These tests follow a real S3 server (versitygw on loopback) end to end:
// through Go and through the sqlite3 shell, they bootstrap, follow, resume
// without a second snapshot download, and re-bootstrap across a gap; they
// count what an idle replica costs at the server; they take the server away
// mid-follow; and they check that bad credentials, a missing bucket and
// denied access fail the open, fast, naming the problem and never a secret.

// TestS3Follow runs bootstrap, follow, resume and both kinds of gap
// re-bootstrap against versitygw, through Go and through the sqlite3 shell.
func TestS3Follow(t *testing.T) {
	for _, tc := range s3Openers {
		t.Run(tc.name, func(t *testing.T) { testS3FollowWith(t, tc.open) })
	}
}

func testS3FollowWith(t *testing.T, open s3Opener) {
	w := newS3World(t, true)
	ep := w.srv.Endpoint

	// Bootstrap and follow: the first open names the source; the endpoint
	// comes from the environment, as AWS tools read it.
	t.Setenv("AWS_ENDPOINT_URL_S3", ep)
	m := w.mark()
	c := open(t, w.dir, "file:replica.db?vfs=walrust&source=s3://bkt/app&interval=50ms")
	w.waitCaughtUp(c, "bootstrap")
	if _, gets := w.readsOnce(m, 1); s3SnapshotGets(gets) != 1 || len(gets) != 1 {
		t.Errorf("bootstrap fetched %q, want the snapshot once", gets)
	}
	for i := 0; i < 5; i++ {
		w.commit(1 + i)
		w.waitCaughtUp(c, fmt.Sprintf("commit %d", i+1))
	}
	st := s3ClientStatus(t, c)
	if st.Bootstraps != 1 || st.FilesApplied != 6 || st.LastError != "" {
		t.Errorf("after following: %s", st.raw)
	}
	s3CheckNoSecret(t, w, "walrust_status", st.raw)

	// Resume: close every connection (the follower stops), publish while
	// nobody follows, reopen with only the endpoint. The local state names
	// the source; the new files are fetched, the snapshot is not.
	w.close(c)
	m = w.mark()
	var missed []store.FileInfo
	for range 2 {
		missed = append(missed, w.commit(3))
	}
	if lists, gets := w.reads(m); lists != 0 || len(gets) != 0 {
		t.Errorf("a closed replica made %d LIST and %d GET requests", lists, len(gets))
	}
	s3test.Unsetenv(t, "AWS_ENDPOINT_URL_S3")
	t.Setenv("WALRUST_INTERVAL", "50ms")
	resumeURI := fmt.Sprintf("file:replica.db?vfs=walrust&endpoint=%s&path_style=true", ep)
	c = open(t, w.dir, resumeURI)
	w.waitCaughtUp(c, "resume")
	_, gets := w.readsOnce(m, len(missed))
	if want := w.paths(missed...); strings.Join(gets, " ") != want {
		t.Errorf("resume fetched %q, want only the two files it missed %q", gets, want)
	}
	if st := s3ClientStatus(t, c); st.Bootstraps != 0 || st.FilesApplied != 2 {
		t.Errorf("after resume: %s", st.raw)
	}

	// Gap while following: the files after the replica's TXID are gone
	// (never seen), a newer snapshot and the file after it are there.
	w.skip(2)
	w.skip(2)
	m = w.mark()
	snap := w.pub.Snapshot(t)
	next := w.commit(1)
	w.waitCaughtUp(c, "re-bootstrap while following")
	if _, gets := w.readsOnce(m, 2); strings.Join(gets, " ") != w.paths(snap, next) {
		t.Errorf("re-bootstrap fetched %q, want the new snapshot and the file after it", gets)
	}
	if st := s3ClientStatus(t, c); st.Bootstraps != 1 || st.LastError != "" {
		t.Errorf("after re-bootstrap while following: %s", st.raw)
	}

	// Gap while closed: L0 files the replica never applied are deleted by
	// retention, and a newer snapshot is put.
	w.close(c)
	m = w.mark()
	gone := []store.FileInfo{w.commit(1), w.commit(1)}
	w.commit(1)
	snap = w.pub.Snapshot(t)
	next = w.commit(1)
	for _, fi := range gone {
		w.delete(fi)
	}
	c = open(t, w.dir, resumeURI)
	w.waitCaughtUp(c, "re-bootstrap at resume")
	if _, gets := w.readsOnce(m, 2); strings.Join(gets, " ") != w.paths(snap, next) {
		t.Errorf("re-bootstrap at resume fetched %q, want the new snapshot and the file after it", gets)
	}
	st = s3ClientStatus(t, c)
	if st.Bootstraps != 1 || st.LastError != "" {
		t.Errorf("after re-bootstrap at resume: %s", st.raw)
	}
	s3CheckNoSecret(t, w, "walrust_status", st.raw)
	w.close(c)
}

// close closes a client; a shell's stderr must not show the secret.
func (w *s3World) close(c s3Client) {
	w.t.Helper()
	c.close()
	if sc, ok := c.(*s3ShellClient); ok {
		s3CheckNoSecret(w.t, w, "sqlite3's stderr", sc.stderr.String())
	}
}

func s3CheckNoSecret(t *testing.T, w *s3World, what, s string) {
	t.Helper()
	if strings.Contains(s, w.srv.SecretKey) {
		t.Errorf("%s shows the secret access key", what)
	}
}

// s3Sample is the replica's request counters as the client and the server
// agree on them, at one instant.
type s3Sample struct {
	at          time.Time
	lists, gets int64
}

// sampleIdle reads the replica's counters (through conn) and the server's
// (since mark, when the replica's store was opened) at a moment when no
// request is in flight: the client counts a request before it sends it and
// the server logs it before it answers, so the two agree exactly when
// nothing is between the two. A server that keeps counting more than the
// client (retries, requests the client does not count) fails the test.
func (w *s3World) sampleIdle(conn interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, mark int) s3Sample {
	w.t.Helper()
	status := func() store.Stats {
		var s string
		if err := conn.QueryRowContext(context.Background(), "PRAGMA walrust_status").Scan(&s); err != nil {
			w.t.Fatal(err)
		}
		return parseS3Status(w.t, s).Store
	}
	var s s3Sample
	testtool.EventuallyEvery(w.t, "the replica and the server to agree on the requests", 5*time.Second, time.Millisecond, func() error {
		before := status()
		lists, gets := w.reads(mark)
		at := time.Now()
		after := status()
		if before != after || int64(lists) != before.Lists || int64(len(gets)) != before.Gets {
			return fmt.Errorf("the server counts %d LIST and %d GET requests, the replica %d and %d",
				lists, len(gets), after.Lists, after.Gets)
		}
		s = s3Sample{at: at, lists: before.Lists, gets: before.Gets}
		return nil
	})
	return s
}

// TestS3IdleCost counts, at the server, what a caught-up replica costs while
// nothing happens: one LIST per poll and no GET, with 10 and with 10,000 old
// files at L0, and the same with 8 connections open as with 1 (one follower
// per file per process).
func TestS3IdleCost(t *testing.T) {
	for _, old := range []int{10, 10000} {
		t.Run(fmt.Sprintf("%d files", old), func(t *testing.T) { testS3IdleCost(t, old) })
	}
}

func testS3IdleCost(t *testing.T, old int) {
	const interval = 50 * time.Millisecond
	const window = time.Second
	w := newS3World(t, true)
	// Old L0 files, below the snapshot: listed at start, never needed, never
	// read (they are not even LTX).
	for txid := 1; txid <= old; txid++ {
		name := fmt.Sprintf("%016x-%016x.ltx", txid, txid)
		w.srv.WriteObject(s3Bucket, s3Prefix+"/0000/"+name, []byte("never read"))
	}
	w.insert(10)
	w.pub.Advance(ltxtest.ReadImage(t, w.primPath), w.pub.TXID+ltx.TXID(old)+10)
	w.pub.Snapshot(t)
	w.commit(1)

	mark := w.mark()
	db, err := sql.Open("sqlite3", fmt.Sprintf("file:%s?vfs=walrust&source=%s&endpoint=%s&interval=%s",
		filepath.Join(w.dir, "replica.db"), w.srv.URL(s3Bucket, s3Prefix), w.srv.Endpoint, interval))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := &s3GoClient{db: db}
	w.waitCaughtUp(c, "bootstrap")
	ctx := context.Background()

	measure := func(conns int, conn interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}) int64 {
		t.Helper()
		s0 := w.sampleIdle(conn, mark)
		time.Sleep(window) // the measuring window, not an assertion
		s1 := w.sampleIdle(conn, mark)
		lists, gets, took := s1.lists-s0.lists, s1.gets-s0.gets, s1.at.Sub(s0.at)
		t.Logf("%d old files, %d connection(s): %d LIST (server = client) and %d GET in %v at interval %v",
			old, conns, lists, gets, took.Round(time.Millisecond), interval)
		if gets != 0 {
			t.Errorf("%d GET requests while idle", gets)
		}
		// A poll starts interval after the previous one ended, so there are
		// at most took/interval+1 of them. (That each costs exactly one LIST,
		// counted poll by poll, is TestS3IdlePolls in vfs/replica; here the
		// server's count is the replica's own, whatever the load.)
		if most := int64(took/interval) + 1; lists > most || lists < 3 {
			t.Errorf("%d LIST requests in %v at interval %v: want one per poll, %d at most", lists, took, interval, most)
		}
		return lists
	}
	one := measure(1, db)

	var held []*sql.Conn
	for range 8 {
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var n int
		if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != w.rows {
			t.Fatalf("count = %d, %v; want %d", n, err, w.rows)
		}
		held = append(held, conn)
	}
	// One follower for all 8: the server saw only the requests of the store
	// whose counters the status shows (sampleIdle), at the same rate.
	eight := measure(len(held), held[0])
	if eight > one*3/2+2 {
		t.Errorf("8 connections cost %d LIST requests per %v, 1 connection %d", eight, window, one)
	}
}

// s3DBStatus reads PRAGMA walrust_status through db.
func s3DBStatus(t *testing.T, db *sql.DB) s3Status {
	t.Helper()
	var s string
	if err := db.QueryRow("PRAGMA walrust_status").Scan(&s); err != nil {
		t.Fatalf("walrust_status: %v", err)
	}
	return parseS3Status(t, s)
}

// TestS3Outage takes the S3 server away mid-follow: readers keep reading
// the last good state throughout, the status names the failure, and once
// the server is back the replica converges by itself and the error clears.
func TestS3Outage(t *testing.T) {
	w := newS3World(t, true)
	db, err := sql.Open("sqlite3", fmt.Sprintf("file:%s?vfs=walrust&source=%s&endpoint=%s&path_style=true&interval=50ms",
		filepath.Join(w.dir, "replica.db"), w.srv.URL(s3Bucket, s3Prefix), w.srv.Endpoint))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := &s3GoClient{db: db}
	w.commit(3)
	w.waitCaughtUp(c, "before the outage")

	// A reader queries in a loop from now to the end; rows never go back.
	ctx, cancel := context.WithCancel(context.Background())
	var reads atomic.Int64
	readErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		last := 0
		for ctx.Err() == nil {
			var n int
			if err := db.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n < last {
				if ctx.Err() == nil {
					readErr <- fmt.Errorf("read %d: %d rows (had %d), %v", reads.Load()+1, n, last, err)
				}
				return
			}
			last = n
			reads.Add(1)
		}
	}()
	stopReader := func() {
		cancel()
		wg.Wait()
		select {
		case err := <-readErr:
			t.Fatalf("reads failed: %v", err)
		default:
		}
	}
	defer stopReader()
	waitReads := func(what string) {
		t.Helper()
		n := reads.Load()
		waitFor(t, what, func() (bool, error) {
			select {
			case err := <-readErr:
				t.Fatalf("%s: %v", what, err)
			default:
			}
			return reads.Load() >= n+10, nil
		})
	}
	waitReads("reads before the outage")

	down := time.Now()
	w.srv.Stop()
	var st s3Status
	waitFor(t, "last_error while the server is down", func() (bool, error) {
		st = s3DBStatus(t, db)
		return st.LastError != "", nil
	})
	toError := time.Since(down)
	t.Logf("last_error: %s", st.LastError)
	for _, want := range []string{"list s3://bkt/app L0", "connection refused"} {
		if !strings.Contains(st.LastError, want) {
			t.Errorf("last_error %q does not say %q", st.LastError, want)
		}
	}
	s3CheckNoSecret(t, w, "walrust_status", st.raw)
	if st.TXID != uint64(w.pub.TXID) {
		t.Errorf("while down: TXID %d, want %d", st.TXID, w.pub.TXID)
	}
	waitReads("reads while the server is down")
	if !strings.Contains(w.log.String(), `msg="poll failed"`) {
		t.Errorf("no \"poll failed\" line in the log")
	}

	up := time.Now()
	w.srv.Restart()
	w.commit(2)
	w.commit(1)
	published := time.Now()
	w.waitCaughtUp(c, "after the server is back")
	waitFor(t, "last_error to clear", func() (bool, error) {
		st = s3DBStatus(t, db)
		return st.LastError == "", nil
	})
	converged := time.Now()
	waitReads("reads after the outage")
	stopReader()
	t.Logf("error in the status %v after the server went down; %d reads in all, none failed; caught up and clear %v after the restart (%v after the files were published)",
		toError.Round(time.Millisecond), reads.Load(), converged.Sub(up).Round(time.Millisecond), converged.Sub(published).Round(time.Millisecond))
}

// TestS3OpenFails: wrong credentials, a missing bucket and denied access
// fail the open at once (not after timeout=), with a log line that names
// the problem and shows no secret — in this process and in the sqlite3
// shell, on its stderr.
func TestS3OpenFails(t *testing.T) {
	w := newS3World(t, true)
	const userSecret = "walrust-user-secret-5678"
	const wrongSecret = "wrong-secret-9012"
	w.srv.AddUser("WALRUSTUSER", userSecret)
	secrets := []string{w.srv.SecretKey, userSecret, wrongSecret}
	for _, tc := range []struct {
		name   string
		env    func(t testing.TB)
		bucket string
		wants  []string
	}{
		{"wrong secret", func(t testing.TB) { s3test.SetEnv(t, w.srv.AccessKey, wrongSecret) }, s3Bucket,
			[]string{"s3://bkt/app: access denied", "(SignatureDoesNotMatch)"}},
		{"unknown access key", func(t testing.TB) { s3test.SetEnv(t, "NOSUCHKEY", wrongSecret) }, s3Bucket,
			[]string{"s3://bkt/app: access denied", "does not know this access key", "(InvalidAccessKeyId)"}},
		{"no credentials", func(t testing.TB) {
			w.srv.Env(t)
			s3test.Unsetenv(t, "AWS_ACCESS_KEY_ID")
			s3test.Unsetenv(t, "AWS_SECRET_ACCESS_KEY")
		}, s3Bucket, []string{"no usable AWS credentials"}},
		{"missing bucket", w.srv.Env, "nobucket", []string{`bucket \"nobucket\" does not exist`, "(NoSuchBucket)"}},
		{"access denied", func(t testing.TB) { s3test.SetEnv(t, "WALRUSTUSER", userSecret) }, s3Bucket,
			[]string{`access denied to bucket \"bkt\"`, "(AccessDenied)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.env(t)
			dir := t.TempDir()
			uri := fmt.Sprintf("file:replica.db?vfs=walrust&source=s3://%s/app&endpoint=%s&timeout=20s", tc.bucket, w.srv.Endpoint)
			check := func(what, out string) {
				t.Helper()
				line := logLine(out, `msg="cannot open database"`)
				if line == "" {
					t.Fatalf("%s has no \"cannot open database\" line:\n%s", what, out)
				}
				t.Logf("%s: %s", what, line)
				for _, want := range tc.wants {
					if !strings.Contains(line, want) {
						t.Errorf("%s does not say %s", what, want)
					}
				}
				for _, s := range secrets {
					if strings.Contains(out, s) {
						t.Errorf("%s shows a secret", what)
					}
				}
			}

			// Go, in this process.
			mark := len(w.log.String())
			t.Chdir(dir)
			took, err := s3OpenFails(t, uri)
			if took > 5*time.Second {
				t.Errorf("the open failed after %v, not at once", took)
			}
			for _, s := range secrets {
				if strings.Contains(err.Error(), s) {
					t.Errorf("the error shows a secret: %v", err)
				}
			}
			check("walrust's log", w.log.String()[mark:])

			// The sqlite3 shell, on its stderr.
			// After a failed .open the shell goes on with an empty
			// in-memory database, which has no table t.
			sh := s3StartShell(t, dir, uri)
			if n, err := sh.query("SELECT count(*) FROM t"); err == nil {
				t.Fatalf("the shell opened the replica: %s rows", n)
			}
			sh.close()
			if !strings.Contains(sh.stderr.String(), "Error: unable to open database") {
				t.Errorf("sqlite3 did not report the failed open:\n%s", sh.stderr)
			}
			check("sqlite3's stderr", sh.stderr.String())
		})
	}
}

// TestS3ListOnlyCredentials: credentials that may list the bucket but not
// read its objects (a bucket policy granting s3:ListBucket only) pass the
// store's s3Probe, so it is the bootstrap's GET that is denied. That is as
// permanent as a denied LIST: the open fails at once, saying so, instead of
// waiting out timeout=.
func TestS3ListOnlyCredentials(t *testing.T) {
	w := newS3World(t, true)
	const userSecret = "walrust-lister-secret-3456"
	w.srv.AddUser("WALRUSTLISTER", userSecret)
	w.putPolicy(`{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": ["WALRUSTLISTER"]},
		"Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::bkt"]}]}`)
	s3test.SetEnv(t, "WALRUSTLISTER", userSecret)

	t.Chdir(w.dir)
	mark := len(w.log.String())
	took, _ := s3OpenFails(t, fmt.Sprintf("file:replica.db?vfs=walrust&source=s3://bkt/app&endpoint=%s&interval=50ms&timeout=10s", w.srv.Endpoint))
	if took > 5*time.Second {
		t.Errorf("the open failed after %v, not at once", took)
	}
	log := w.log.String()[mark:]
	line := logLine(log, `msg="cannot open database"`)
	t.Logf("after %v: %s", took.Round(time.Millisecond), line)
	for _, want := range []string{"bootstrap", `access denied to bucket \"bkt\"`, "(AccessDenied)"} {
		if !strings.Contains(line, want) {
			t.Errorf("the log line does not say %s", want)
		}
	}
	if strings.Contains(log, userSecret) {
		t.Errorf("the log shows the secret")
	}
}

// putPolicy sets the bucket's policy, as the root account.
func (w *s3World) putPolicy(policy string) {
	w.t.Helper()
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRegion(s3test.Region),
		config.WithCredentialsProvider(aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: w.srv.AccessKey, SecretAccessKey: w.srv.SecretKey}, nil
		})))
	if err != nil {
		w.t.Fatal(err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(w.srv.Endpoint)
		o.UsePathStyle = true
	})
	if _, err := client.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(s3Bucket), Policy: aws.String(policy)}); err != nil {
		w.t.Fatalf("put bucket policy: %v", err)
	}
}

// TestS3ResumeWhileDown: a replica that already has a version opens and
// serves it while the S3 server is down (a process restarting during an
// outage), says why it is not following, and catches up by itself once the
// server is back.
func TestS3ResumeWhileDown(t *testing.T) {
	w := newS3World(t, true)
	uri := fmt.Sprintf("file:%s?vfs=walrust&source=%s&endpoint=%s&interval=50ms",
		filepath.Join(w.dir, "replica.db"), w.srv.URL(s3Bucket, s3Prefix), w.srv.Endpoint)
	db, err := sql.Open("sqlite3", uri)
	if err != nil {
		t.Fatal(err)
	}
	w.commit(2)
	w.waitCaughtUp(&s3GoClient{db: db}, "before the outage")
	db.Close()

	w.srv.Stop()
	resume := fmt.Sprintf("file:%s?vfs=walrust&endpoint=%s&interval=50ms", filepath.Join(w.dir, "replica.db"), w.srv.Endpoint)
	db, err = sql.Open("sqlite3", resume)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := &s3GoClient{db: db}
	start := time.Now()
	got, err := s3Probe(c)
	if err != nil || got != w.want() {
		t.Fatalf("open while the server is down: %q, %v; want %q (TXID|rows)", got, err, w.want())
	}
	t.Logf("opened in %v with the server down", time.Since(start).Round(time.Millisecond))
	var st s3Status
	waitFor(t, "last_error while the server is down", func() (bool, error) {
		st = s3DBStatus(t, db)
		return strings.Contains(st.LastError, "connection refused"), nil
	})
	t.Logf("last_error: %s", st.LastError)
	s3CheckNoSecret(t, w, "walrust_status", st.raw)

	w.srv.Restart()
	w.commit(1)
	w.waitCaughtUp(c, "after the server is back")
	waitFor(t, "last_error to clear", func() (bool, error) {
		st = s3DBStatus(t, db)
		return st.LastError == "", nil
	})
	if st.Bootstraps != 0 {
		t.Errorf("resumed by re-bootstrapping: %s", st.raw)
	}
}

// TestS3FirstOpenWaitsForServer: a brand-new replica opened while the S3
// server is down waits for it, up to timeout=, as for a first snapshot
// that is not there yet: the open succeeds once the server is back within
// the timeout, and otherwise fails after it, naming what failed.
func TestS3FirstOpenWaitsForServer(t *testing.T) {
	w := newS3World(t, true)
	w.commit(3)
	w.srv.Stop()
	uri := func(name, timeout string) string {
		return fmt.Sprintf("file:%s?vfs=walrust&source=%s&endpoint=%s&path_style=true&interval=50ms&timeout=%s",
			filepath.Join(w.dir, name), w.srv.URL(s3Bucket, s3Prefix), w.srv.Endpoint, timeout)
	}

	// Down for longer than the timeout: the open fails after it.
	took, _ := s3OpenFails(t, uri("late.db", "1s"))
	t.Logf("server down, timeout=1s: failed after %v", took.Round(time.Millisecond))
	if took < time.Second {
		t.Errorf("the open failed after %v, before its timeout of 1s", took)
	}
	// The SQLite error is only a code; the log line says why.
	if line := logLine(w.log.String(), `msg="cannot open database"`); !strings.Contains(line, "connection refused") || !strings.Contains(line, "after 1s") {
		t.Errorf("the log line of the failed open does not say why: %q", line)
	}

	// Back within the timeout: the open succeeds with the store's data.
	go func() {
		time.Sleep(time.Second)
		w.srv.Restart()
	}()
	db, err := sql.Open("sqlite3", uri("replica.db", "20s"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	if err := db.Ping(); err != nil {
		t.Fatalf("open while the server was down for 1s: %v", err)
	}
	t.Logf("server back after 1s: the open succeeded after %v", time.Since(start).Round(time.Millisecond))
	// Ready means the first poll's whole chain is applied, not just the
	// snapshot: the replica answers the store's head at once.
	if got, err := s3Probe(&s3GoClient{db: db}); err != nil || got != w.want() {
		t.Errorf("replica answers %q, %v; want %q (TXID|rows)", got, err, w.want())
	}
}

// logLine is the last line of a log that contains s, or "".
func logLine(log, s string) string {
	line := ""
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, s) {
			line = l
		}
	}
	return line
}

// s3OpenFails opens uri through the VFS in this process, expects the open
// to fail, and returns how long it took and its error.
func s3OpenFails(t *testing.T, uri string) (time.Duration, error) {
	t.Helper()
	db, err := sql.Open("sqlite3", uri)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	err = db.Ping()
	took := time.Since(start)
	if err == nil {
		t.Fatalf("open %s succeeded", uri)
	}
	return took, err
}

// TestS3ReopenFromState: a replica of an S3-compatible store made with
// endpoint=, region= and path_style= reopens, once every connection is
// closed, from `file:replica.db?vfs=walrust` alone: its state file keeps
// those options (and no credentials), and it follows the files published
// meanwhile and after. An open that names an endpoint uses its own, for
// that open, and leaves the state file's as they were.
func TestS3ReopenFromState(t *testing.T) {
	for _, tc := range s3Openers {
		t.Run(tc.name, func(t *testing.T) {
			w := newS3World(t, true)
			// An S3-compatible server, as R2 or MinIO: nothing in the
			// environment says where it is or which region it has.
			s3test.Unsetenv(t, "AWS_REGION")
			t.Setenv("WALRUST_INTERVAL", "50ms")
			made := fmt.Sprintf("file:replica.db?vfs=walrust&source=%s&endpoint=%s&region=%s&path_style=true",
				w.srv.URL(s3Bucket, s3Prefix), w.srv.Endpoint, s3test.Region)
			c := tc.open(t, w.dir, made)
			w.commit(2)
			w.waitCaughtUp(c, "made with parameters")
			w.close(c)

			state, err := os.ReadFile(filepath.Join(w.dir, "replica.db-replica-state"))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{`"endpoint": "` + w.srv.Endpoint + `"`, `"region": "` + s3test.Region + `"`, `"path_style": true`} {
				if !strings.Contains(string(state), want) {
					t.Errorf("state file does not keep %s:\n%s", want, state)
				}
			}
			for _, secret := range []string{w.srv.AccessKey, w.srv.SecretKey} {
				if strings.Contains(string(state), secret) {
					t.Errorf("state file holds a credential:\n%s", state)
				}
			}

			m := w.mark()
			missed := w.commit(3)
			c = tc.open(t, w.dir, "file:replica.db?vfs=walrust")
			w.waitCaughtUp(c, "reopened with no parameters")
			if _, gets := w.readsOnce(m, 1); strings.Join(gets, " ") != w.paths(missed) {
				t.Errorf("reopen fetched %q, want only the file it missed %q", gets, w.paths(missed))
			}
			w.commit(1)
			w.waitCaughtUp(c, "following after the reopen")
			if st := s3ClientStatus(t, c); st.Bootstraps != 0 || st.LastError != "" {
				t.Errorf("after the reopen: %s", st.raw)
			}
			w.close(c)

			// An explicit endpoint wins for its open: this one reaches
			// nothing, and says so; the state file is not changed.
			c = tc.open(t, w.dir, "file:replica.db?vfs=walrust&endpoint=http://127.0.0.1:1")
			waitFor(t, "the explicit endpoint's error", func() (bool, error) {
				st := s3ClientStatus(t, c)
				return strings.Contains(st.LastError, "127.0.0.1:1"), nil
			})
			w.close(c)
			if after, err := os.ReadFile(filepath.Join(w.dir, "replica.db-replica-state")); err != nil || !strings.Contains(string(after), `"endpoint": "`+w.srv.Endpoint+`"`) {
				t.Errorf("state file after an open with another endpoint: %v\n%s", err, after)
			}
		})
	}
}
