package follow

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walrust/walrust/vfs/replica"
	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/ltxtest"
	"github.com/walrust/walrust/vfs/testkit/s3test"
	"github.com/walrust/walrust/vfs/testkit/testtool"
	"github.com/walrust/walrust/vfs/testkit/worldtest"
)

// TestS3HostileDownloads: a download that trickles (never silent long
// enough for the read timeout) or a body longer than the listing said
// fails that poll as a fault of the store — retried at the next poll, never
// rejected — with bounded time and memory, for the snapshot of a bootstrap,
// for small files fetched ahead into memory, and for files streamed in turn.
func TestS3HostileDownloads(t *testing.T) {
	defer setDownloadBudget(time.Second, 1<<20)()
	for _, tc := range []struct {
		name     string
		fault    s3test.Fault
		streamed bool
	}{
		{"trickle", s3test.Trickle, false},
		{"trickle streamed", s3test.Trickle, true},
		{"longer", s3test.Longer, false},
		{"longer streamed", s3test.Longer, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.streamed {
				old := fetchMaxBuffered
				fetchMaxBuffered = 0
				defer func() { fetchMaxBuffered = old }()
			}
			testS3HostileDownload(t, tc.fault)
		})
	}
}

func testS3HostileDownload(t *testing.T, fault s3test.Fault) {
	srv := s3test.Start(t, "bkt")
	srv.Env(t)
	ctx := context.Background()
	direct, err := store.Open(ctx, srv.URL("bkt", "app"), srv.Options())
	if err != nil {
		t.Fatal(err)
	}
	proxy := s3test.NewProxy(t, srv.Endpoint)
	proxy.LongerBy = 16 << 20
	opts := srv.Options()
	opts.Endpoint = proxy.URL
	st, err := store.Open(ctx, srv.URL("bkt", "app"), opts)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	ref := worldtest.NewRefDB(t, filepath.Join(dir, "primary.db"), 4096)
	pub := &ltxtest.Primary{Store: direct, PageSize: 4096, NoChecksum: true}
	ref.Exec("INSERT INTO t (k, v) VALUES ('a', ?)", worldtest.Blob(1, 3000))
	pub.Advance(ref.Image(), 1)
	pub.Snapshot(t)

	r, err := replica.Open(filepath.Join(dir, "replica.db"), st.String())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	logs := &testtool.Buffer{}
	defer func() {
		if t.Failed() {
			t.Logf("follower log:\n%s", logs)
		}
	}()
	proxy.Misbehave("GET", fault, 1) // the snapshot's download
	f := Follow(r, st, Options{Interval: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	defer f.Close()
	if err := f.WaitReady(20 * time.Second); err != nil {
		t.Fatalf("bootstrap through one faulty download: %v", err)
	}
	checkRetried(t, logs.String(), "bootstrap")

	mark := len(logs.String())
	ref.Exec("INSERT INTO t (k, v) VALUES ('b', ?)", worldtest.Blob(2, 3000))
	proxy.Misbehave("GET", fault, 1) // the new file's download
	pub.Commit(t, ref.Image())
	waitTXID(t, r, f, pub.TXID)
	checkRetried(t, logs.String()[mark:], "apply")

	// What was read of the faulty bodies stays near what the files hold.
	if got := st.Stats().Bytes; got > 1<<20 {
		t.Errorf("%d bytes downloaded for two small files", got)
	}
	if s := f.Status(); s.Bootstraps != 1 {
		t.Errorf("status %+v: want one bootstrap", s)
	}
}

// checkRetried checks that a faulty download failed a poll, said it would
// be retried, and rejected nothing.
func checkRetried(t *testing.T, log, what string) {
	t.Helper()
	if strings.Contains(log, "rejected") {
		t.Errorf("%s: a file was rejected for the store's fault:\n%s", what, log)
	}
	line := ""
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, `msg="poll failed"`) {
			line = l
			break
		}
	}
	if !strings.Contains(line, "retrying") {
		t.Errorf("%s: no poll failed saying it retries: %q", what, line)
	}
	t.Logf("%s: %s", what, line)
}

// setDownloadBudget shortens the download budget for a test.
func setDownloadBudget(base time.Duration, rate int64) (restore func()) {
	oldBase, oldRate := downloadBase, downloadMinRate
	downloadBase, downloadMinRate = base, rate
	return func() { downloadBase, downloadMinRate = oldBase, oldRate }
}
