package s3test

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// setPdeathsig makes the kernel kill versitygw if the test process dies
// without running its cleanups (a panic, a timeout, kill -9), so no server is
// left listening.
func setPdeathsig(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// tempDir prefers a directory on /dev/shm: creating 10,000 objects there
// takes a tenth of a second, on a disk file system it can take seconds. The
// posix backend needs user extended attributes, which tmpfs has since
// Linux 6.6; without them it falls back to tb.TempDir.
func tempDir(tb testing.TB) string {
	if d, err := os.MkdirTemp("/dev/shm", "walrust-s3test-*"); err == nil {
		if err := syscall.Setxattr(d, "user.walrust-probe", []byte("1"), 0); err == nil {
			tb.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
		os.RemoveAll(d)
	}
	return tb.TempDir()
}
