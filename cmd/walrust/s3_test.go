package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
