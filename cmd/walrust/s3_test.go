package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// versitygw is a real S3 server on a loopback port (posix backend: each
// folder of dir is a bucket, each file below it an object).
type versitygw struct {
	endpoint, access, secret, dir string
}

// startVersitygw runs the versitygw the Makefile installs under
// $WALRUST_BUILD/bin (or build/bin, or PATH) until the test ends. Without
// one the test is skipped, or failed under CI=true.
func startVersitygw(t *testing.T, buckets ...string) *versitygw {
	t.Helper()
	candidates := []string{"../../build/bin/versitygw"} // from cmd/walrust, the package directory
	if b := os.Getenv("WALRUST_BUILD"); b != "" {
		candidates = append([]string{filepath.Join(b, "bin", "versitygw")}, candidates...)
	}
	bin := ""
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() {
			bin = c
			break
		}
	}
	if bin == "" {
		bin, _ = exec.LookPath("versitygw")
	}
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("versitygw not found: run `make tools`")
		}
		t.Skip("versitygw not found: run `make tools`")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	base := t.TempDir()
	v := &versitygw{endpoint: "http://" + addr, access: "WALRUSTCMD", secret: "secret-" + strconv.Itoa(os.Getpid()), dir: filepath.Join(base, "data")}
	for _, b := range buckets {
		if err := os.MkdirAll(filepath.Join(v.dir, b), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(base, "iam"), 0o755); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	cmd := exec.Command(bin, "--access", v.access, "--secret", v.secret, "--port", addr,
		"--region", "us-east-1", "--iam-dir", filepath.Join(base, "iam"), "posix", v.dir)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	client := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := client.Get(v.endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return v // any answer means it serves
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw does not answer on %s: %v", addr, err)
		}
	}
}

// Publishing to a real S3 server with the S3 options given as flags, and
// reading its status with them given as URL parameters.
func TestPublishS3(t *testing.T) {
	srv := startVersitygw(t, "bucket")
	env := []string{"AWS_ACCESS_KEY_ID=" + srv.access, "AWS_SECRET_ACCESS_KEY=" + srv.secret}
	path, db := newDB(t, "wal")
	flags := []string{"--endpoint", srv.endpoint, "--region", "us-east-1", "--path-style"}
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

	source := "s3://bucket/app?endpoint=" + srv.endpoint + "&region=us-east-1&path_style=true"
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
	err := filepath.WalkDir(filepath.Join(srv.dir, "bucket", "app"), func(p string, d fs.DirEntry, err error) error {
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
	if _, err := os.Stat(filepath.Join(srv.dir, "bucket", "app", "0009", "0000000000000001-0000000000000001.ltx")); err != nil {
		t.Fatal(err)
	}
	checkStore(t, fileStore, db, 2)
}
