//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// openPTY opens a pseudo-terminal pair: the master the test types into and
// reads the screen from, and the slave the shell gets as its terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	master = os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		t.Fatalf("pty number: %v", err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		t.Fatalf("open pty slave: %v", err)
	}
	if err := unix.IoctlSetWinsize(int(slave.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 120}); err != nil {
		t.Fatalf("set window size: %v", err)
	}
	return master, slave
}

// screen collects what the shell writes to its terminal.
type screen struct {
	mu  sync.Mutex
	buf strings.Builder
	pos int // where the next wait starts looking
}

func (s *screen) copyFrom(f *os.File) {
	b := make([]byte, 4096)
	for {
		n, err := f.Read(b)
		s.mu.Lock()
		s.buf.Write(b[:n])
		s.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// waitFor waits until want appears after the previous match, and returns
// what came before it.
func (s *screen) waitFor(t *testing.T, want string, during func()) string {
	t.Helper()
	var before string
	testtool.EventuallyEvery(t, fmt.Sprintf("%q", want), 20*time.Second, 100*time.Millisecond, func() error {
		s.mu.Lock()
		all := s.buf.String()
		s.mu.Unlock()
		if i := strings.Index(all[s.pos:], want); i >= 0 {
			before = all[s.pos : s.pos+i]
			s.pos += i + len(want)
			return nil
		}
		if during != nil {
			during()
		}
		return fmt.Errorf("screen so far:\n%q", all[s.pos:])
	})
	return before
}

// TestTerminal drives the shell through a real pseudo-terminal: prompt,
// line editing, Ctrl-C to interrupt a running query, history saved in
// $HOME/.walrust_history, Ctrl-D to leave.
func TestTerminal(t *testing.T) {
	e := newEnv(t)
	wantOK(t, e.query("SELECT 1")) // bootstrap the replica
	master, slave := openPTY(t)
	defer master.Close()

	cmd := exec.Command(shellBin, "--local", e.replica)
	cmd.Env = append(os.Environ(), "HOME="+e.home)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	var scr screen
	go scr.copyFrom(master)
	typeKeys := func(keys string) {
		t.Helper()
		if _, err := master.WriteString(keys); err != nil {
			t.Fatalf("type %q: %v", keys, err)
		}
	}

	banner := scr.waitFor(t, "walrust> ", nil)
	if !strings.Contains(banner, "at TXID 1, following "+e.source()) {
		t.Errorf("banner %q", banner)
	}
	typeKeys("SELECT id, name\r")
	scr.waitFor(t, "   ...> ", nil)
	typeKeys("FROM users WHERE id < 3;\r")
	if got := scr.waitFor(t, "walrust> ", nil); !strings.HasSuffix(got, "id  name\r\n--  -----\r\n 1  ada\r\n 2  grace\r\n") {
		t.Errorf("query output %q", got)
	}

	// Line editing: Ctrl-A goes to the start of the line.
	typeKeys("AS x;\x01SELECT 7 \r")
	if got := scr.waitFor(t, "walrust> ", nil); !strings.HasSuffix(got, "x\r\n-\r\n7\r\n") {
		t.Errorf("edited line output %q", got)
	}

	// Ctrl-C interrupts a long query (sent until it lands while the
	// query runs: before that the terminal is in raw mode and Ctrl-C
	// merely clears the line) and the session goes on.
	typeKeys("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 2000000000) SELECT count(*) FROM c;\r")
	scr.waitFor(t, "Error: interrupted", func() { typeKeys("\x03") })
	typeKeys("\x03SELECT 'still here' AS s;\r")
	scr.waitFor(t, "still here\r\n", nil)

	// Ctrl-D leaves with status 0.
	scr.waitFor(t, "walrust> ", nil)
	typeKeys("\x04")
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Errorf("shell exited with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("shell did not exit on Ctrl-D")
	}

	hist, err := os.ReadFile(filepath.Join(e.home, ".walrust_history"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	for _, want := range []string{"SELECT id, name\n", "FROM users WHERE id < 3;\n", "SELECT 7 AS x;\n", "SELECT 'still here' AS s;\n"} {
		if !strings.Contains(string(hist), want) {
			t.Errorf("history lacks %q:\n%s", want, hist)
		}
	}
}
