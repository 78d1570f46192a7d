package publish

import (
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// TestOtherProcessCannotDropTheLog: a WAL database written by other
// processes, each closing its connection when done (the sqlite3 shell, a
// cron job), as the publisher's connections are the only others. The last
// connection to close deletes the log after a checkpoint when it can lock
// the database file exclusively; the publisher's connections hold a
// SHARED lock on it, so it cannot — unless the publisher closed a
// descriptor of the database file of its own, which drops every POSIX
// lock the process holds on the file. Then the log went, under the
// publisher's read transaction, and it published nothing more, silently.
func TestOtherProcessCannotDropTheLog(t *testing.T) {
	sqlite3, err := exec.LookPath("sqlite3")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("this test needs the sqlite3 shell")
		}
		t.Skip("this test needs the sqlite3 shell")
	}
	p := newPrimary(t, "wal", 4096)
	st := newFileStore(t)
	newTable(t, p)
	p.db.Close() // from here on, only the publisher and the shell

	pub, err := New(p.path, st, Options{WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	res := publishOnce(t, pub)
	for i := range 4 {
		insert := fmt.Sprintf("INSERT INTO t (id, name, body) VALUES (%d, 'shell', randomblob(500))", 1000+i)
		if out, err := exec.Command(sqlite3, p.path, insert).CombinedOutput(); err != nil {
			t.Fatalf("sqlite3: %v\n%s", err, out)
		}
		if _, err := os.Stat(p.path + "-wal"); err != nil {
			t.Fatalf("after the shell's insert %d closed, the log is gone (%v): the shell could lock the database file exclusively, under the publisher's connections", i+1, err)
		}
		res = publishOnce(t, pub)
		expect(t, res, true, false, uint64(2+i))
	}

	db, err := sql.Open("sqlite3", "file:"+p.path)
	if err != nil {
		t.Fatal(err)
	}
	p.db = db
	t.Cleanup(func() { db.Close() })
	verifyStore(t, p, st, res)
}
