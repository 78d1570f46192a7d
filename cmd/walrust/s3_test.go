package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/walrust/walrust/vfs/testkit/s3test"
)

// Publishing to a real S3 server with the S3 options given as flags, and
// reading its status with them given as URL parameters.
func TestPublishS3(t *testing.T) {
	srv := s3test.Start(t, "bucket")
	env, flags := s3Args(srv)
	path, db := newDB(t, "wal")
	run := func(args ...string) string {
		t.Helper()
		out, errOut, code := walrustEnv(t, env, args...)
		if code != 0 {
			t.Fatalf("walrust %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}

	if out := run(append([]string{"publish", path, "s3://bucket/app"}, flags...)...); !snapshotLine.MatchString(out) {
		t.Fatalf("first publish printed %q", out)
	}
	if _, err := db.Exec("UPDATE t SET body = 'changed' WHERE id < 5"); err != nil {
		t.Fatal(err)
	}
	if out := run(append([]string{"publish", path, "s3://bucket/app"}, flags...)...); !deltaLine.MatchString(out) {
		t.Fatalf("second publish printed %q", out)
	}

	source := "s3://bucket/app?endpoint=" + srv.Endpoint + "&region=us-east-1&path_style=true"
	var s struct {
		Files      int    `json:"files"`
		NewestTXID string `json:"newest_txid"`
		PageSize   int    `json:"page_size"`
	}
	if err := json.Unmarshal([]byte(run("status", "--json", source)), &s); err != nil {
		t.Fatal(err)
	}
	if s.Files != 2 || s.NewestTXID != "0000000000000002" || s.PageSize != 4096 {
		t.Fatalf("status: %+v", s)
	}

	// The objects sit in Litestream's S3 layout, <prefix>/<level as %04x>/;
	// moved into the file layout, ltx/<level>/, they rebuild the database.
	fileStore := t.TempDir()
	moved := 0
	err := filepath.WalkDir(filepath.Join(srv.Dir, "bucket", "app"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".ltx") {
			return err
		}
		level, err := strconv.ParseInt(filepath.Base(filepath.Dir(p)), 16, 32)
		if err != nil {
			return fmt.Errorf("%s: level folder: %w", p, err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		dst := filepath.Join(fileStore, "ltx", strconv.Itoa(int(level)), filepath.Base(p))
		moved++
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil || moved != 2 {
		t.Fatalf("%d objects: %v", moved, err)
	}
	if _, err := os.Stat(filepath.Join(srv.Dir, "bucket", "app", "0009", "0000000000000001-0000000000000001.ltx")); err != nil {
		t.Fatal(err)
	}
	checkStore(t, fileStore, db, 2)
}

// TestReplicateS3Resume: a replica made with --endpoint, --region and
// --path-style resumes with the source alone, as R2 or MinIO replicas do
// with nothing about the server in the environment: the state file keeps
// the three options.
func TestReplicateS3Resume(t *testing.T) {
	srv := s3test.Start(t, "bucket")
	s3test.SetEnv(t, srv.AccessKey, srv.SecretKey)
	s3test.Unsetenv(t, "AWS_REGION")
	_, flags := s3Args(srv)
	path, db := newDB(t, "wal")
	replica := filepath.Join(t.TempDir(), "replica.db")
	publish := func() {
		t.Helper()
		if out, errOut, code := walrustEnv(t, nil, append([]string{"publish", path, "s3://bucket/app"}, flags...)...); code != 0 {
			t.Fatalf("publish: exit %d\n%s%s", code, out, errOut)
		}
	}

	publish()
	p := startWalrust(t, nil, append([]string{"replicate", "s3://bucket/app", "--local", replica, "--interval", "50ms"}, flags...)...)
	p.waitFor(&p.stdout, `Applied \d+ pages, TXID 1\nPolling for updates`)
	if code := p.stop(syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p)
	}

	mustExec(t, db, "UPDATE t SET body = 'changed' WHERE id < 5")
	publish()
	p = startWalrust(t, nil, "replicate", "s3://bucket/app", "--local", replica, "--interval", "50ms")
	p.waitFor(&p.stdout, `(?s)^Resuming from TXID 1 .*Applied 0000000000000002-0000000000000002\.ltx: .*TXID 2\n`)
	if code := p.stop(syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p)
	}
	if p.stderr.String() != "" {
		t.Errorf("resume without S3 flags wrote to stderr:\n%s", p)
	}
	checkReplica(t, db, replica)
}
