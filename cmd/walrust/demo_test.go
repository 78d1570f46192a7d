package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// demoTimeout bounds a run of the demo; it ends by itself in about 10 s.
const demoTimeout = 30 * time.Second

// demoBuild builds, once, what demo.sh needs beyond this package's binary:
// the extension and walrust-shell, from this tree (so never stale), next to
// the binary.
var demoBuild = sync.OnceValues(func() (string, error) {
	dir := filepath.Dir(binary)
	for _, args := range [][]string{
		{"build", "-tags", "SQLITE3VFS_LOADABLE_EXT", "-buildmode=c-shared", "-o", filepath.Join(dir, "walrust.so"), "../../cshim"},
		{"build", "-o", filepath.Join(dir, "walrust-shell"), "../walrust-shell"},
	} {
		cmd := exec.Command("go", args...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return dir, nil
})

// demoTools returns the extension and walrust-shell for the demo. Without
// the sqlite3 shell the test is skipped, or failed under CI=true.
func demoTools(t *testing.T) (ext, shell string) {
	t.Helper()
	if _, err := exec.LookPath("sqlite3"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("the demo needs the sqlite3 shell")
		}
		t.Skip("the demo needs the sqlite3 shell")
	}
	dir, err := demoBuild()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "walrust.so"), filepath.Join(dir, "walrust-shell")
}

// runDemo runs demo.sh with this package's walrust (or another command in
// its place) and returns its output, exit code and wall time. TMPDIR is a
// directory of the test's, so that what the demo leaves behind can be seen.
func runDemo(t *testing.T, walrustBin string, env ...string) (stdout, stderr string, code int, took time.Duration, tmp string) {
	t.Helper()
	ext, shell := demoTools(t)
	tmp = t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), demoTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "demo.sh")
	cmd.Env = append(os.Environ(), append([]string{
		"WALRUST=" + walrustBin, "WALRUST_EXT=" + ext, "WALRUST_SHELL=" + shell, "TMPDIR=" + tmp,
	}, env...)...)
	// On timeout, end the demo's whole process group, not only sh.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err := cmd.Run()
	took = time.Since(start)
	if ctx.Err() != nil {
		t.Fatalf("the demo still ran after %s:\n%s\n%s", demoTimeout, out.String(), errOut.String())
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	checkDemoGone(t, tmp)
	return out.String(), errOut.String(), code, took, tmp
}

// checkDemoGone fails if the demo left files in tmp or processes that name
// it on their command line.
func checkDemoGone(t *testing.T, tmp string) {
	t.Helper()
	if entries, err := os.ReadDir(tmp); err != nil || len(entries) > 0 {
		t.Errorf("the demo left %v in its TMPDIR (%v)", entries, err)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(tmp)) {
			t.Errorf("a process of the demo still runs: %s: %s", p, bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		}
	}
}

var demoSummary = regexp.MustCompile(`(?m)^Summary: primary (\d+) rows, replica (\d+) rows; TXID (\d+) published, TXID (\d+) on the replica; lag ([0-9.]+)s while writing$`)

// make demo's script, end to end: it ends by itself, the replica catches up
// with the primary, and nothing is left running or on disk.
func TestDemo(t *testing.T) {
	out, errOut, code, took, _ := runDemo(t, binary)
	if code != 0 {
		t.Fatalf("demo: exit %d after %s\n%s\n--- stderr:\n%s", code, took, out, errOut)
	}
	m := demoSummary.FindStringSubmatch(out)
	if m == nil || m[1] != m[2] || m[3] != m[4] || m[1] == "0" || m[3] == "1" {
		t.Fatalf("no summary with equal rows and TXIDs:\n%s", out)
	}
	// While the writer runs (a commit per 100 ms, each from a sqlite3
	// process of its own, for several seconds), the publisher publishes
	// every 200 ms and the replica follows: many TXIDs, and the replica
	// seconds behind at most. A publisher that stops seeing commits until
	// the last publish still ends with equal rows, but not this.
	if txid, _ := strconv.Atoi(m[3]); txid < 10 {
		t.Errorf("only %d TXIDs published while the writer ran for seconds", txid)
	}
	if lag, _ := strconv.ParseFloat(m[5], 64); lag > 3 {
		t.Errorf("the replica was %.2fs behind while the writer ran; want a few publish and poll intervals of 200ms", lag)
	}
	for _, want := range []string{
		"\n    Bootstrapping from snapshot...\n",
		"\n    Polling for updates every 200ms...\n",
		" rows, newest row ",
		", role reader\n",
		"\n    walrust_txid\n",
		"\n    Stopped at TXID ",
		"\nThe replica caught up with the primary.\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the demo's output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
	t.Logf("demo: %s, %s", took.Round(100*time.Millisecond), m[0])
}

// A replica that never reaches the published TXID makes the demo fail (and
// still clean up). A stand-in for walrust reports a TXID that was never
// published.
func TestDemoFailsWithoutCatchingUp(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "walrust")
	script := `#!/bin/sh
if [ "$1" = publish ] && [ "$#" = 3 ]; then
	"$REAL_WALRUST" "$@" >/dev/null || exit
	echo "Published 00000000000003e7-00000000000003e7.ltx (1 page, 4.1 KB) TXID 999"
	exit 0
fi
exec "$REAL_WALRUST" "$@"
`
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	out, errOut, code, _, _ := runDemo(t, fake, "REAL_WALRUST="+binary, "DEMO_CATCHUP_TRIES=2")
	if code != 1 || !strings.Contains(errOut, "demo: FAILED: the replica did not catch up with the primary") ||
		!regexp.MustCompile(`(?m)^Summary: .* TXID 999 published, TXID \d+ on the replica`).MatchString(out) {
		t.Fatalf("exit %d\n%s\n--- stderr:\n%s", code, out, errOut)
	}
}

// Interrupted (as Ctrl-C interrupts the terminal's foreground process
// group; SIGTERM here, since a test may run with SIGINT ignored, which a
// shell cannot trap), the demo stops at once and cleans up.
func TestDemoInterrupted(t *testing.T) {
	ext, shell := demoTools(t)
	tmp := t.TempDir()
	cmd := exec.Command("sh", "demo.sh")
	cmd.Env = append(os.Environ(), "WALRUST="+binary, "WALRUST_EXT="+ext, "WALRUST_SHELL="+shell, "TMPDIR="+tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out testtool.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	defer func() {
		select {
		case <-done:
		default:
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}()
	testtool.Eventually(t, "the demo to start replicating", demoTimeout, func() error {
		if !strings.Contains(out.String(), "Polling for updates") {
			return fmt.Errorf("no %q yet:\n%s", "Polling for updates", out.String())
		}
		return nil
	})
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		var exit *exec.ExitError
		if !errors.As(waitErr, &exit) || exit.ExitCode() != 143 {
			t.Fatalf("after SIGTERM: %v, want exit code 143\n%s", waitErr, out.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the demo still runs 5s after SIGTERM:\n%s", out.String())
	}
	checkDemoGone(t, tmp)
}
