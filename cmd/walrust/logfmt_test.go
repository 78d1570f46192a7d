package main

import (
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walrust/walrust/vfs/follow"
	"github.com/walrust/walrust/vfs/store"
)

// textLine is a --log-format text line: an RFC 3339 time with
// milliseconds, a level, the message.
var textLine = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d) (INFO |WARN |ERROR) \S`)

// jsonLines parses every line of out as a JSON object.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON line: %q (%v)", l, err)
		}
		if ts, _ := m["time"].(string); !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$`).MatchString(ts) {
			t.Errorf("time %q in %q: want RFC 3339 with milliseconds", ts, l)
		}
		if m["level"] == nil || m["msg"] == nil {
			t.Errorf("no level or msg in %q", l)
		}
		lines = append(lines, m)
	}
	return lines
}

// find returns the first line whose msg starts with prefix.
func find(t *testing.T, lines []map[string]any, prefix string) map[string]any {
	t.Helper()
	for _, m := range lines {
		if s, _ := m["msg"].(string); strings.HasPrefix(s, prefix) {
			return m
		}
	}
	t.Fatalf("no line starts with %q in %v", prefix, lines)
	return nil
}

// The printer's lines in each format, on a fake clock.
func TestReplicatePrinterFormats(t *testing.T) {
	l0 := store.FileInfo{Level: 0, MinTXID: 8, MaxTXID: 8, Size: 4096}
	events := func(p *replicatePrinter, clock *fakeClock) {
		p.event(follow.Event{Kind: follow.EventError, Err: errors.New("store down")})
		clock.advance(time.Second)
		p.event(follow.Event{Kind: follow.EventBootstrapStart, File: snapshotFile, Bytes: snapshotFile.Size})
		p.event(follow.Event{Kind: follow.EventSnapshotInstalled, File: snapshotFile, Bytes: snapshotFile.Size, Pages: 977, TXID: 7, Took: 2 * time.Second})
		p.status(follow.Status{LastPoll: clock.t, TXID: 7}, true)
		p.event(follow.Event{Kind: follow.EventApplied, File: l0, Pages: 3, TXID: 8})
	}

	p, out, errOut, clock := testPrinter(true)
	p.setLog(logText, false, 0)
	if p.tty {
		t.Fatal("--log-format text rewrites progress lines in place")
	}
	events(p, clock)
	want := "2025-01-02T03:04:06.000Z INFO  Bootstrapping from snapshot...\n" +
		"2025-01-02T03:04:06.000Z INFO  Downloaded 0000000000000001-0000000000000007.ltx (4.0 MB in 2s)\n" +
		"2025-01-02T03:04:06.000Z INFO  Applied 977 pages, TXID 7\n" +
		"2025-01-02T03:04:06.000Z INFO  Polling for updates every 1s...\n" +
		"2025-01-02T03:04:06.000Z INFO  Applied 0000000000000008-0000000000000008.ltx: 3 pages, TXID 8\n"
	if out.String() != want {
		t.Errorf("text stdout:\n%s\nwant\n%s", out, want)
	}
	want = "2025-01-02T03:04:05.000Z ERROR Error: store down; retrying every 1s\n" +
		"2025-01-02T03:04:06.000Z INFO  Recovered: polls succeed again (after 1s of errors)\n"
	if errOut.String() != want {
		t.Errorf("text stderr:\n%s\nwant\n%s", errOut, want)
	}

	p, out, errOut, clock = testPrinter(false)
	p.setLog(logJSON, false, 0)
	events(p, clock)
	stdout, stderr := jsonLines(t, out.String()), jsonLines(t, errOut.String())
	if m := find(t, stderr, "Error: store down"); m["level"] != "ERROR" || m["err"] != "store down" || m["db"] != "replica.db" || m["time"] != "2025-01-02T03:04:05.000Z" {
		t.Errorf("error line %v", m)
	}
	if m := find(t, stdout, "Downloaded "); m["file"] != snapshotFile.Name() || m["took"] != 2.0 {
		t.Errorf("download line %v", m)
	}
	if m := find(t, stdout, "Applied 0000000000000008"); m["level"] != "INFO" || m["file"] != l0.Name() || m["pages"] != 3.0 || m["txid"] != 8.0 || m["db"] != "replica.db" {
		t.Errorf("applied line %v", m)
	}
}

// --quiet leaves out the per-file lines; the summary comes every
// --summary-every, with the files applied meanwhile, the first with every
// file since the start (here the snapshot, applied before polling began,
// as files caught up with at a resume are).
func TestReplicatePrinterQuiet(t *testing.T) {
	p, out, _, clock := testPrinter(false)
	p.setLog(logPlain, true, time.Minute)
	p.status(follow.Status{LastPoll: clock.t, TXID: 7, FilesApplied: 1}, true)
	for i := 8; i < 20; i++ {
		p.event(follow.Event{Kind: follow.EventApplied, File: store.FileInfo{MinTXID: 8, MaxTXID: 8}, Pages: 1, TXID: 8})
	}
	clock.advance(59 * time.Second)
	p.status(follow.Status{LastPoll: clock.t, TXID: 19, FilesApplied: 13, LagSeconds: 0.8}, true)
	clock.advance(time.Second)
	p.status(follow.Status{LastPoll: clock.t, TXID: 19, FilesApplied: 13, LagSeconds: 0.8}, true)
	want := "Polling for updates every 1s...\nSummary: applied 13 files, TXID 19, lag 0.8s\n"
	if out.String() != want {
		t.Errorf("stdout:\n%s\nwant\n%s", out, want)
	}
}

// walrust replicate --log-format json, end to end: an error (no snapshot
// yet), the bootstrap, an applied file and the stop, each one JSON object
// per line with its fields.
func TestReplicateLogJSON(t *testing.T) {
	path, db := newDB(t, "wal")
	dir := t.TempDir()
	url := "file://" + dir
	replica := filepath.Join(t.TempDir(), "replica.db")
	p := startWalrust(t, nil, "replicate", url, "--local", replica, "--interval", "20ms", "--log-format", "json")
	p.waitFor(&p.stderr, `"level":"ERROR"`)
	publishOnce(t, path, url)
	p.waitFor(&p.stdout, `Polling for updates`)
	mustExec(t, db, "INSERT INTO t (body) VALUES ('one more')")
	publishOnce(t, path, url)
	p.waitFor(&p.stdout, `Applied 0000000000000002`)
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p)
	}
	stdout, stderr := jsonLines(t, p.stdout.String()), jsonLines(t, p.stderr.String())
	if m := find(t, stderr, "Error: "); m["level"] != "ERROR" || !strings.Contains(m["err"].(string), "no snapshot yet") || m["db"] != replica {
		t.Errorf("error line %v", m)
	}
	find(t, stderr, "Recovered: ")
	find(t, stdout, "Bootstrapping from snapshot")
	if m := find(t, stdout, "Downloaded "); m["file"] != "0000000000000001-0000000000000001.ltx" {
		t.Errorf("download line %v", m)
	}
	if m := find(t, stdout, "Applied 0000000000000002"); m["level"] != "INFO" || m["file"] != "0000000000000002-0000000000000002.ltx" || m["txid"] != 2.0 || m["pages"].(float64) < 1 || m["db"] != replica {
		t.Errorf("applied line %v", m)
	}
	if m := find(t, stdout, "Stopped at TXID 2"); m["txid"] != 2.0 {
		t.Errorf("stop line %v", m)
	}
}

// --log-format text: every line starts with a timestamp and a level.
func TestReplicateLogText(t *testing.T) {
	path, _ := newDB(t, "wal")
	dir := t.TempDir()
	replica := filepath.Join(t.TempDir(), "replica.db")
	p := startWalrust(t, nil, "replicate", "file://"+dir, "--local", replica, "--interval", "20ms", "--log-format", "text")
	p.waitFor(&p.stderr, `ERROR Error: `)
	publishOnce(t, path, "file://"+dir)
	p.waitFor(&p.stdout, `INFO  Polling for updates`)
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p)
	}
	for _, l := range strings.Split(strings.TrimSuffix(p.stdout.String()+p.stderr.String(), "\n"), "\n") {
		if !textLine.MatchString(l) {
			t.Errorf("line without a timestamp and a level: %q", l)
		}
	}
}

// --quiet, end to end: no per-file lines, the summary every
// --summary-every, errors kept.
func TestReplicateQuiet(t *testing.T) {
	path, db := newDB(t, "wal")
	dir := t.TempDir()
	url := "file://" + dir
	replica := filepath.Join(t.TempDir(), "replica.db")
	p := startWalrust(t, nil, "replicate", url, "--local", replica, "--interval", "20ms", "--quiet", "--summary-every", "300ms")
	p.waitFor(&p.stderr, `Error: .*no snapshot yet`)
	publishOnce(t, path, url)
	p.waitFor(&p.stdout, `Polling for updates`)
	for range 3 {
		mustExec(t, db, "INSERT INTO t (body) VALUES ('one more')")
		publishOnce(t, path, url)
	}
	waitFolded(t, p, replica, 4)
	p.waitFor(&p.stdout, `Summary: applied \d+ files?, TXID 4, lag \d+\.\ds\n`)
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p)
	}
	if strings.Contains(p.stdout.String(), "Applied 0000") {
		t.Errorf("--quiet printed per-file lines:\n%s", p)
	}
	if !strings.Contains(p.stdout.String(), "Stopped at TXID 4") || !strings.Contains(p.stderr.String(), "Recovered: ") {
		t.Errorf("--quiet left out the stop or the recovery:\n%s", p)
	}
}

// walrust publish --log-format json: the published file and the error
// that ends a run.
func TestPublishLogJSON(t *testing.T) {
	path, _ := newDB(t, "wal")
	url := "file://" + t.TempDir()
	out := mustRun(t, "publish", path, url, "--log-format", "json")
	if m := find(t, jsonLines(t, out), "Published snapshot"); m["txid"] != 1.0 || m["snapshot"] != true || m["db"] != path {
		t.Errorf("publish line %v", m)
	}
	stdout, stderr, code := walrust(t, "publish", filepath.Join(t.TempDir(), "missing.db"), url, "--log-format", "json")
	if code != exitFailure || stdout != "" {
		t.Fatalf("exit %d, stdout %q", code, stdout)
	}
	if m := find(t, jsonLines(t, stderr), "walrust publish: database: "); m["level"] != "ERROR" || m["err"] == nil {
		t.Errorf("error line %v", m)
	}
}

// A prefix (a database's name, when one process follows several) comes
// before each plain or text message; json lines carry db instead.
func TestLineLogPrefix(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	for _, tc := range []struct {
		format logFormat
		want   string
	}{
		{logPlain, "app.db: Applied 1 page\n"},
		{logText, "2025-01-02T03:04:05.006Z WARN  app.db: Applied 1 page\n"},
		{logJSON, `{"time":"2025-01-02T03:04:05.006Z","level":"WARN","msg":"Applied 1 page","db":"app.db","pages":1}` + "\n"},
	} {
		l := newLineLog(tc.format, "db", "app.db")
		l.prefix, l.now = "app.db: ", func() time.Time { return at }
		var b strings.Builder
		l.line(&b, slog.LevelWarn, "Applied 1 page", "pages", 1)
		if b.String() != tc.want {
			t.Errorf("%v: %q, want %q", tc.format, b.String(), tc.want)
		}
	}
}

// TestWalrustLogMisspelt: a WALRUST_LOG walrust does not know is said on
// stderr, with what it wants, not ignored.
func TestWalrustLogMisspelt(t *testing.T) {
	_, stderr, _ := walrustEnv(t, []string{"WALRUST_LOG=verbose"}, "replicate", "file:///nonexistent-store", "--local", filepath.Join(t.TempDir(), "r.db"))
	if !strings.Contains(stderr, `WALRUST_LOG=\"verbose\": want debug, info, warn or error`) {
		t.Fatalf("stderr %q; want a line about WALRUST_LOG", stderr)
	}
}
