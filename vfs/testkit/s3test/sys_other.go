//go:build !linux

package s3test

import (
	"os/exec"
	"testing"
)

// setPdeathsig is Linux-only; elsewhere t.Cleanup is what stops the server.
func setPdeathsig(cmd *exec.Cmd) {}

func tempDir(tb testing.TB) string { return tb.TempDir() }
