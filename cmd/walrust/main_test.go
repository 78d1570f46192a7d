package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/ltxtest"
)

// binary is the walrust command, built once for all tests.
var binary string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "walrust-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "walrust")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// walrust runs the command and returns its output and exit code.
func walrust(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return walrustEnv(t, nil, args...)
}

// walrustEnv is walrust with more environment variables.
func walrustEnv(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return out.String(), errOut.String(), exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), 0
}

// mustRun runs walrust and wants exit code 0.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := walrust(t, args...)
	if code != 0 {
		t.Fatalf("walrust %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// newDB creates a database in the given journal mode with a table of rows;
// the connection stays open, as an application's would.
func newDB(t *testing.T, mode string) (string, *sql.DB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.db")
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000&_journal_mode="+mode)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	exec := func(q string, args ...any) {
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
	for i := range 300 {
		exec("INSERT INTO t (body) VALUES (?)", strings.Repeat(fmt.Sprint(i), 50))
	}
	return path, db
}

var (
	snapshotLine = regexp.MustCompile(`^Published snapshot 0000000000000001-0000000000000001\.ltx \(\d+ pages, [0-9.]+ [KM]?B\) TXID 1 \(no local position\)\n$`)
	deltaLine    = regexp.MustCompile(`^Published 0000000000000002-0000000000000002\.ltx \(\d+ pages?, [0-9.]+ [KM]?B\) TXID 2\n$`)
)

func TestPublish(t *testing.T) {
	for _, mode := range []string{"delete", "wal"} {
		t.Run(mode, func(t *testing.T) {
			path, db := newDB(t, mode)
			dest := filepath.Join(t.TempDir(), "store", "app") // created by publish
			url := "file://" + dest

			if out := mustRun(t, "publish", path, url); !snapshotLine.MatchString(out) {
				t.Fatalf("first publish printed %q", out)
			}
			if out := mustRun(t, "publish", path, url); out != "No changes: TXID 1 is published\n" {
				t.Fatalf("publish without changes printed %q", out)
			}
			if _, err := db.Exec("UPDATE t SET body = 'changed' WHERE id < 5"); err != nil {
				t.Fatal(err)
			}
			// Flags may come first.
			if out := mustRun(t, "publish", "--interval", "0", path, url); !deltaLine.MatchString(out) {
				t.Fatalf("second publish printed %q", out)
			}
			checkStore(t, dest, db, 2)
		})
	}
}

// checkStore rebuilds the database from the store's files and compares its
// rows with the primary's.
func checkStore(t *testing.T, dir string, db *sql.DB, wantTXID ltx.TXID) {
	t.Helper()
	st, err := store.OpenFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	snaps, err := st.ListAfter(ctx, store.SnapshotLevel, 0)
	if err != nil || len(snaps) == 0 {
		t.Fatalf("no snapshot: %v", err)
	}
	files := []store.FileInfo{snaps[len(snaps)-1]}
	deltas, err := st.ListAfter(ctx, 0, files[0].MaxTXID)
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, deltas...)
	rebuilt := filepath.Join(t.TempDir(), "rebuilt.db")
	out, err := os.Create(rebuilt)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	var pos ltx.Pos
	for _, f := range files {
		rc, err := st.Open(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		dec := ltx.NewDecoder(bytes.NewReader(b))
		if err := dec.DecodeHeader(); err != nil {
			t.Fatal(err)
		}
		hdr := dec.Header()
		if !hdr.IsSnapshot() && (hdr.MinTXID != pos.TXID+1 || hdr.PreApplyChecksum != pos.PostApplyChecksum) {
			t.Fatalf("%s does not follow %s", f, pos)
		}
		ltxtest.DecodeInto(t, dec, out)
		pos = dec.PostApplyPos()
	}
	if pos.TXID != wantTXID {
		t.Fatalf("store ends at TXID %d, want %d", pos.TXID, wantTXID)
	}
	// Bytes 18-19 of a WAL primary say WAL: read the copy in rollback mode.
	if _, err := out.WriteAt([]byte{1, 1}, 18); err != nil {
		t.Fatal(err)
	}
	copyDB, err := sql.Open("sqlite3", "file:"+rebuilt+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer copyDB.Close()
	if a, b := rowsOf(t, db), rowsOf(t, copyDB); a != b {
		t.Fatalf("rebuilt rows differ from the primary's")
	}
}

func rowsOf(t *testing.T, db *sql.DB) string {
	t.Helper()
	var s string
	if err := db.QueryRow("SELECT group_concat(id || ':' || body, ',') FROM (SELECT * FROM t ORDER BY id)").Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// --snapshot-interval and --retention: once the first snapshot is old, a
// publish writes a new one and deletes the old one, one line each.
func TestPublishSnapshotAndRetention(t *testing.T) {
	path, db := newDB(t, "delete")
	dest := t.TempDir()
	url := "file://" + dest
	for _, flag := range []string{"--snapshot-interval", "--retention"} {
		_, errOut, code := walrust(t, "publish", path, url, flag, "-1s")
		if code != 2 || !strings.Contains(errOut, flag+" -1s: must not be negative") {
			t.Fatalf("%s -1s: exit %d, stderr %q", flag, code, errOut)
		}
	}
	if out := mustRun(t, "publish", path, url); !snapshotLine.MatchString(out) {
		t.Fatalf("first publish printed %q", out)
	}
	then := time.Now().Add(-3 * time.Hour)
	first := filepath.Join(dest, "ltx", "9", "0000000000000001-0000000000000001.ltx")
	if err := os.Chtimes(first, then, then); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("UPDATE t SET body = 'changed' WHERE id < 5"); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, "publish", path, url, "--snapshot-interval", "1h", "--retention", "1h")
	lines := strings.SplitAfter(out, "\n")
	periodic := regexp.MustCompile(`^Published snapshot 0000000000000001-0000000000000002\.ltx \(\d+ pages, [0-9.]+ [KM]?B\) TXID 2 \(periodic: the newest snapshot, 0000000000000001-0000000000000001\.ltx, is 3h0m\ds old\)\n$`)
	if len(lines) != 4 || !deltaLine.MatchString(lines[0]) || !periodic.MatchString(lines[1]) ||
		lines[2] != "Deleted 1 file covered by snapshot 0000000000000001-0000000000000001.ltx (older than 1h)\n" {
		t.Fatalf("publish printed %q", out)
	}
	if _, err := os.Stat(first); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the old snapshot is still there: %v", err)
	}
	checkStore(t, dest, db, 2)

	// 0 turns both off.
	if err := os.Chtimes(filepath.Join(dest, "ltx", "9", "0000000000000001-0000000000000002.ltx"), then, then); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("UPDATE t SET body = 'again' WHERE id < 5"); err != nil {
		t.Fatal(err)
	}
	out = mustRun(t, "publish", path, url, "--snapshot-interval", "0", "--retention", "0")
	if !strings.HasPrefix(out, "Published 0000000000000003-0000000000000003.ltx") || strings.Count(out, "\n") != 1 {
		t.Fatalf("publish with both off printed %q", out)
	}
}

// With --interval, walrust keeps publishing until SIGINT and exits 0.
func TestPublishInterval(t *testing.T) {
	path, db := newDB(t, "wal")
	dest := t.TempDir()
	cmd := exec.Command(binary, "publish", path, "file://"+dest, "--interval", "50ms")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 10)
	go func() {
		defer close(lines)
		buf := make([]byte, 4096)
		var pending string
		for {
			n, err := stdout.Read(buf)
			pending += string(buf[:n])
			for {
				i := strings.IndexByte(pending, '\n')
				if i < 0 {
					break
				}
				lines <- pending[:i+1]
				pending = pending[i+1:]
			}
			if err != nil {
				return
			}
		}
	}()
	next := func() string {
		t.Helper()
		select {
		case l := <-lines:
			return l
		case <-time.After(20 * time.Second):
			t.Fatalf("no output; stderr: %s", stderr.String())
			return ""
		}
	}
	if l := next(); !snapshotLine.MatchString(l) {
		t.Fatalf("first line %q", l)
	}
	if _, err := db.Exec("DELETE FROM t WHERE id % 2 = 0"); err != nil {
		t.Fatal(err)
	}
	if l := next(); !deltaLine.MatchString(l) {
		t.Fatalf("second line %q", l)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for range lines {
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGINT: %v; stderr: %s", err, stderr.String())
	}
	checkStore(t, dest, db, 2)
}

func TestStatus(t *testing.T) {
	path, db := newDB(t, "wal")
	dest := t.TempDir()
	url := "file://" + dest
	if out := mustRun(t, "status", url); out != "Source:     "+url+"\nNo LTX files.\n" {
		t.Fatalf("status of an empty store: %q", out)
	}
	mustRun(t, "publish", path, url)
	if _, err := db.Exec("INSERT INTO t (body) VALUES ('x')"); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "publish", path, url)

	out := mustRun(t, "status", url)
	for _, want := range []string{
		"Level 0:    1 file     TXID 2-2 (0000000000000002-0000000000000002), ",
		"Level 9:    1 file     TXID 1-1 (0000000000000001-0000000000000001), ",
		"Snapshot:   L9/0000000000000001-0000000000000001.ltx (TXID 1, ",
		"Newest:     TXID 2 (0000000000000002) in L0/0000000000000002-0000000000000002.ltx",
		"Data time:  ",
		"Database:   ",
		" pages of 4096 bytes",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}

	var s struct {
		Source     string `json:"source"`
		Files      int    `json:"files"`
		NewestTXID string `json:"newest_txid"`
		Levels     []struct {
			Level   int    `json:"level"`
			Files   int    `json:"files"`
			MinTXID string `json:"min_txid"`
			MaxTXID string `json:"max_txid"`
		} `json:"levels"`
		Snapshot struct {
			Name string `json:"name"`
		} `json:"snapshot"`
		Timestamp time.Time `json:"timestamp"`
		PageSize  int       `json:"page_size"`
		Commit    int       `json:"commit"`
	}
	out = mustRun(t, "status", url, "--json") // flag after the argument
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if s.Source != url || s.Files != 2 || s.NewestTXID != "0000000000000002" || len(s.Levels) != 2 ||
		s.Snapshot.Name != "0000000000000001-0000000000000001.ltx" || s.PageSize != 4096 || s.Commit == 0 ||
		time.Since(s.Timestamp) > time.Minute {
		t.Fatalf("status --json: %+v\n%s", s, out)
	}
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "app.db")
	if err := os.WriteFile(db, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"publish"},
		{"publish", db},
		{"publish", db, "file://" + dir, "extra"},
		{"publish", db, "file://" + dir, "--bogus"},
		{"publish", db, "file://" + dir, "--interval"},
		{"publish", db, "file://" + dir, "--interval", "soon"},
		{"publish", db, "file://" + dir, "--interval", "-1s"},
		{"publish", db, "file://" + dir, "--snapshot-interval", "-1s"},
		{"publish", db, "file://" + dir, "--retention", "-24h"},
		{"publish", db, "file://" + dir, "--retention", "a day"},
		{"publish", db, "relative/dir"},
		{"publish", db, "/absolute/but/no/scheme"},
		{"publish", db, "http://example.com/x"},
		{"publish", db, "file://host/dir"},
		{"status"},
		{"status", "file:relative"},
		{"status", "s3://"},
		{"status", "file://" + dir, "--json=maybe"},
		{"status", "file://" + dir, "--path-style=sometimes"},
		{"replicate", "file://" + dir, "--local", db, "--bootstrap", "quick"},
		{"replicate", "file://" + dir, "--local", db, "--max-lag", "-5s"},
		{"replicate", "file://" + dir, "--local", db, "--interval", "1s", "--max-interval", "100ms"},
		{"replicate", "file://" + dir, "--local", db, "--max-interval", "-1s"},
		{"replicate", "file://" + dir, "--local", db, "--interval", "often"},
		{"status", "file://" + dir, "--max-lag", "1m"},
		{"status", "--local", db, "--max-lag", "-1m"},
		{"help", "frobnicate"},
	} {
		out, errOut, code := walrust(t, args...)
		if code != 2 || out != "" || !strings.Contains(errOut, "Usage: walrust") {
			t.Errorf("walrust %s: exit %d, stdout %q, stderr %q; want exit 2 and usage on stderr", strings.Join(args, " "), code, out, errOut)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"-h"}, {"help"}, {"help", "publish"}, {"publish", "--help"}, {"status", "-h"}, {"status", "x", "--help"},
	} {
		out, errOut, code := walrust(t, args...)
		if code != 0 || !strings.HasPrefix(out, "Usage: walrust") || errOut != "" {
			t.Errorf("walrust %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, out, errOut)
		}
	}
}

func TestRuntimeFailures(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"publish", filepath.Join(dir, "missing.db"), "file://" + dir},
		{"publish", dir, "file://" + dir},
		{"status", "file://" + filepath.Join(dir, "missing")},
	} {
		_, errOut, code := walrust(t, args...)
		if code != 1 || errOut == "" || strings.Contains(errOut, "Usage:") {
			t.Errorf("walrust %s: exit %d, stderr %q; want exit 1 and a message", strings.Join(args, " "), code, errOut)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{24 * time.Hour: "24h", 90 * time.Minute: "1h30m", 2 * time.Minute: "2m", 90 * time.Second: "1m30s", 50 * time.Millisecond: "50ms", time.Hour + time.Second: "1h0m1s"} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 999: "999 B", 1000: "1.0 KB", 12100: "12.1 KB", 3_400_000: "3.4 MB", 5e12: "5.0 TB", 7e15: "7000.0 TB"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
