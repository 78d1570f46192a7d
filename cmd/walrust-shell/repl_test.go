package main

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// interactive runs the REPL on a scripted terminal (keystrokes in, screen
// out; raw mode is a no-op) over the env's replica.
func (e *env) interactive(keys string, hist *history) (screen, errs string, code int) {
	e.t.Helper()
	db, conn, err := open(options{source: e.source(), local: e.replica, interval: "20ms"}, false, io.Discard)
	if err != nil {
		e.t.Fatal(err)
	}
	defer db.Close()
	defer conn.Close()
	var out, errOut strings.Builder
	sh := &shell{conn: conn, out: bufio.NewWriter(&out), errOut: &errOut, local: e.replica, width: func() int { return 80 }}
	c := console{
		rw: struct {
			io.Reader
			io.Writer
		}{strings.NewReader(keys), &out},
		raw:  func() (func() error, error) { return func() error { return nil }, nil },
		size: func() (int, bool) { return 100, true },
	}
	code = sh.repl(c, hist)
	return out.String(), errOut.String(), code
}

const (
	ctrlC = "\x03"
	up    = "\x1b[A"
)

func TestInteractive(t *testing.T) {
	e := newEnv(t)
	histPath := filepath.Join(t.TempDir(), "history")
	hist := openHistory(histPath, io.Discard)
	keys := "SELECT name FROM users\r WHERE id = 1;\r" + // a statement over two lines
		".tables\r" +
		"SELECT 'dropped'\r" + ctrlC + // Ctrl-C drops the statement in progress
		"SELECT 'half a li" + ctrlC + // ... and the line being typed
		"SELECT 2 AS two;\r" +
		up + "\r" + // history: the same statement again
		"INSERT INTO users (name) VALUES ('eve');\r"
	screen, errs, code := e.interactive(keys, hist)
	if err := hist.Close(); err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Errorf("exit %d, want 0 (errors do not change an interactive session's status)", code)
	}
	for _, want := range []string{
		"walrust> SELECT name FROM users\r\n   ...>  WHERE id = 1;\r\nname\n----\nada\n",
		"walrust> .tables\r\nbig_orders  orders      users\n",
		"walrust> SELECT 2 AS two;\r\ntwo\n---\n  2\nwalrust> SELECT 2 AS two;\r\ntwo\n---\n  2\n",
	} {
		if !strings.Contains(screen, want) {
			t.Errorf("screen lacks %q:\n%q", want, screen)
		}
	}
	if strings.Contains(screen, "'dropped'\n") || strings.Contains(screen, "half a li'\n") {
		t.Errorf("a statement dropped with Ctrl-C ran:\n%q", screen)
	}
	if !strings.Contains(errs, "attempt to write a readonly database") || strings.Count(errs, "Error") != 1 {
		t.Errorf("stderr %q: want exactly the read-only error", errs)
	}

	b, err := os.ReadFile(histPath)
	if err != nil {
		t.Fatal(err)
	}
	wantHist := "SELECT name FROM users\n WHERE id = 1;\n.tables\nSELECT 'dropped'\nSELECT 2 AS two;\nINSERT INTO users (name) VALUES ('eve');\n"
	if string(b) != wantHist {
		t.Errorf("history file:\n%s\nwant:\n%s", b, wantHist)
	}

	// A new session starts with the saved history.
	hist = openHistory(histPath, io.Discard)
	defer hist.Close()
	screen, _, code = e.interactive(up+up+"\r.exit 4\r", hist)
	if code != 4 {
		t.Errorf(".exit 4: exit %d", code)
	}
	if !strings.Contains(screen, "SELECT 2 AS two;") || !strings.Contains(screen, "\r\ntwo\n---\n  2\nwalrust> .exit 4") {
		t.Errorf("history not recalled in a new session:\n%q", screen)
	}
}

func TestHistoryCompacts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history")
	var b strings.Builder
	for i := range 3 * maxHistory {
		b.WriteString("SELECT " + strings.Repeat("x", i%7) + ";\n")
		b.WriteString("line ")
		b.WriteString(strings.Repeat("y", i%5))
		b.WriteString("\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	h := openHistory(path, io.Discard)
	defer h.Close()
	if h.Len() != maxHistory {
		t.Errorf("kept %d lines, want %d", h.Len(), maxHistory)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "\n"); n != maxHistory {
		t.Errorf("file has %d lines after compaction, want %d", n, maxHistory)
	}
	h.Add("SELECT 42;")
	if h.At(0) != "SELECT 42;" {
		t.Errorf("newest entry %q", h.At(0))
	}
}
