// Package testtool finds the programs and build outputs that end-to-end
// tests drive (the extension, the sqlite3 shell, Debian's python3). A
// missing tool skips the test on a developer's machine and fails it when
// CI=true, so CI never passes by skipping.
package testtool

import (
	"bufio"
	"bytes"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BuildDir is the Makefile's build directory: $WALRUST_BUILD, or build/ at
// the repository root.
func BuildDir() string {
	if d := os.Getenv("WALRUST_BUILD"); d != "" {
		return d
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "build")
}

// Missing skips or, under CI, fails the test.
func Missing(t testing.TB, what string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing (CI=true: a missing tool is a failure; run make test)", what)
	}
	t.Skipf("%s is missing; run make test", what)
}

// Extension returns the path of build/walrust.so without its suffix, the
// way `.load` and load_extension take it.
func Extension(t testing.TB) string {
	t.Helper()
	so := filepath.Join(BuildDir(), "walrust.so")
	if _, err := os.Stat(so); err != nil {
		Missing(t, so)
	}
	abs, _ := filepath.Abs(so)
	return abs[:len(abs)-len(".so")]
}

// Built returns a binary the Makefile builds into build/ (walrust,
// walrust-shell) or installs into build/bin (versitygw, litestream).
func Built(t testing.TB, name string) string {
	t.Helper()
	for _, p := range []string{filepath.Join(BuildDir(), name), filepath.Join(BuildDir(), "bin", name)} {
		if _, err := os.Stat(p); err == nil {
			abs, _ := filepath.Abs(p)
			return abs
		}
	}
	Missing(t, name+" (in "+BuildDir()+")")
	return ""
}

// Program returns an installed program by absolute path or PATH lookup.
func Program(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, name)
	}
	return p
}

// Buffer is a bytes.Buffer safe to fill from a child process's output while
// a test reads it.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Lines delivers a child process's output line by line, trimmed of
// surrounding space, to a test that waits for each.
type Lines struct {
	lines chan string
}

// ReadLines reads r (a child's stdout) until it ends.
func ReadLines(r io.Reader) *Lines {
	l := &Lines{lines: make(chan string, 100)}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			l.lines <- strings.TrimSpace(sc.Text())
		}
		close(l.lines)
	}()
	return l
}

// Next is the next line; it fails the test, showing the child's stderr,
// when the output ends or no line comes for 15 s.
func (l *Lines) Next(t testing.TB, stderr *Buffer) string {
	t.Helper()
	select {
	case line, ok := <-l.lines:
		if !ok {
			t.Fatalf("process exited; stderr:\n%s", stderr)
		}
		return line
	case <-time.After(15 * time.Second):
		t.Fatalf("no output for 15s; stderr:\n%s", stderr)
	}
	return ""
}

// Drain discards the rest of the output, until it ends.
func (l *Lines) Drain() {
	for range l.lines {
	}
}

// StartPiped starts cmd with a pipe to its standard input and one from its
// standard output (set cmd.Stderr before), failing the test if it cannot.
func StartPiped(t testing.TB, cmd *exec.Cmd) (stdin io.WriteCloser, stdout io.ReadCloser) {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err = cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	return stdin, stdout
}

// ForUmasks runs test once under each of the umasks files are usually made
// with (022, 002), as a subtest, with the mode a new file gets under it
// (0666 less the umask): what walrust's files must have, as SQLite's do.
func ForUmasks(t *testing.T, test func(t *testing.T, want fs.FileMode)) {
	for _, tc := range []struct {
		umask int
		want  fs.FileMode
	}{{0o022, 0o644}, {0o002, 0o664}} {
		t.Run(tc.want.String(), func(t *testing.T) {
			old := syscall.Umask(tc.umask)
			t.Cleanup(func() { syscall.Umask(old) })
			test(t, tc.want)
		})
	}
}

// Eventually polls cond every 10 ms until it returns nil, and fails the
// test once timeout has passed, with what it waited for and cond's last
// error: one polling loop for every test that waits on a follower.
func Eventually(t testing.TB, what string, timeout time.Duration, cond func() error) {
	t.Helper()
	EventuallyEvery(t, what, timeout, 10*time.Millisecond, cond)
}

// EventuallyEvery is Eventually polling every interval: for a cond that
// costs more than a query (one that starts processes or lists a store),
// or that acts on what it waits for (types a key).
func EventuallyEvery(t testing.TB, what string, timeout, interval time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(interval)
	}
}
