package e2e

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSameFileTwoNames opens one replica by its path and through a
// symbolic link to its directory, the first time (the file does not exist
// yet) and again once it does. Both names must share one follower: two
// followers of one file would both write its base file, log and state.
func TestSameFileTwoNames(t *testing.T) {
	e := newWorld(t, 1024, false)
	e.Ref.Insert(5)
	e.Commit()
	link := filepath.Join(e.Dir, "link")
	if err := os.Symlink(e.Dir, link); err != nil {
		t.Fatal(err)
	}
	viaLink := "file:" + filepath.Join(link, "replica.db") + "?vfs=walrust&interval=20ms&source=" + e.Source
	a := openDB(t, viaLink) // first open, through the link
	if err := a.Ping(); err != nil {
		t.Fatal(err)
	}
	b := e.follow()
	fileLink := filepath.Join(e.Dir, "file-link.db")
	if err := os.Symlink(e.Path, fileLink); err != nil {
		t.Fatal(err)
	}
	c := openDB(t, "file:"+fileLink+"?vfs=walrust")
	for range 30 {
		e.Ref.Insert(2)
		e.Commit()
	}
	e.waitCaughtUp(a)
	e.waitCaughtUp(b)
	e.waitCaughtUp(c)
	sa, sb, sc := status(t, a), status(t, b), status(t, c)
	if sa.Path != e.Path || sb.Path != e.Path || sc.Path != e.Path {
		t.Fatalf("paths %q, %q, %q; want all %q (one follower)", sa.Path, sb.Path, sc.Path, e.Path)
	}
	if sa.LastError != "" || sb.LastError != "" {
		t.Fatalf("errors: %q, %q", sa.LastError, sb.LastError)
	}
}
