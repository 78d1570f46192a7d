package store

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestFileStorePermissionDenied: a directory or file the process may not
// read is ErrAccessDenied, which no retry cures (IsPermanent), so that an
// open fails at once, naming it, instead of retrying until its timeout;
// the system's error stays in the chain and the message.
func TestFileStorePermissionDenied(t *testing.T) {
	err := fileErr("list file:///srv/store L9", &fs.PathError{Op: "open", Path: "/srv/store/ltx/9", Err: syscall.EACCES})
	if !IsPermanent(err) || !errors.Is(err, ErrAccessDenied) || !errors.Is(err, fs.ErrPermission) || IsUnreachable(err) {
		t.Fatalf("%v: permanent %v, access denied %v, permission %v, unreachable %v; want permanent access denied",
			err, IsPermanent(err), errors.Is(err, ErrAccessDenied), errors.Is(err, fs.ErrPermission), IsUnreachable(err))
	}
	if want := "list file:///srv/store L9: access denied: open /srv/store/ltx/9: permission denied; check the permissions"; !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("%q; want it to start %q", err, want)
	}
	if err := fileErr("list", &fs.PathError{Op: "open", Path: "/x", Err: syscall.EMFILE}); IsPermanent(err) {
		t.Fatalf("%v: a local shortage (EMFILE) is not permanent", err)
	}

	// Root reads any directory: the store itself can be checked only as
	// another user.
	if os.Geteuid() == 0 {
		return
	}
	dir := t.TempDir()
	st, err := OpenFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	level := filepath.Join(dir, "ltx", "9")
	if err := os.MkdirAll(level, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(level, 0); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(level, 0o755)
	if _, err := st.ListAfter(context.Background(), 9, 0); !IsPermanent(err) || !errors.Is(err, ErrAccessDenied) {
		t.Fatalf("list of an unreadable level: %v; want access denied", err)
	}
}
