package publish

import (
	"context"
	"net"
	"os"
	"testing"
)

// TestReopenFailureLeavesNoClosedSource: when the database's path holds
// another file that cannot be opened (here a socket: open gives ENXIO even
// to root; for another user, a file of mode 0600 that a restore as root
// left), checkSource has closed the connections and the descriptor of the
// old file but kept them, and the old file's inode, as the source. When the
// old file comes back at the path (renamed back, or a new file given the
// freed inode number), checkSource saw the inode it knew and the publisher
// used the closed connections: every publish failed with "sql: database is
// closed" until the process was restarted, and Close reported "file already
// closed".
func TestReopenFailureLeavesNoClosedSource(t *testing.T) {
	p := newPrimary(t, "wal", 4096)
	st := newFileStore(t)
	newTable(t, p)
	pub, err := New(p.path, st, Options{WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, publishOnce(t, pub), true, true, 1)

	aside := p.path + ".aside"
	if err := os.Rename(p.path, aside); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", p.path)
	if err != nil {
		t.Skipf("no unix socket at %s: %v", p.path, err)
	}
	if _, err := pub.PublishOnce(context.Background()); err == nil {
		t.Fatal("a publish of a socket at the database's path succeeded")
	}
	l.Close()
	os.Remove(p.path)
	if err := os.Rename(aside, p.path); err != nil {
		t.Fatal(err)
	}

	insertRows(t, p, 1000, 10, 300)
	res, err := pub.PublishOnce(context.Background())
	if err != nil {
		t.Fatalf("the database is back at its path, and the publish failed: %v", err)
	}
	expect(t, res, true, false, 2)
	if err := pub.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	verifyStore(t, p, st, res)
}
