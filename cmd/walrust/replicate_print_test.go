package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/walrust/walrust/vfs/follow"
	"github.com/walrust/walrust/vfs/store"
)

// fakeClock is a printer's clock that the test moves.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func testPrinter(tty bool) (*replicatePrinter, *strings.Builder, *strings.Builder, *fakeClock) {
	var out, errOut strings.Builder
	clock := &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	p := newReplicatePrinter(&out, &errOut, "replica.db", time.Second)
	p.tty, p.now = tty, clock.now
	return p, &out, &errOut, clock
}

var snapshotFile = store.FileInfo{Level: store.SnapshotLevel, MinTXID: 1, MaxTXID: 7, Size: 4_000_000}

// On a terminal a download is one line rewritten in place, cleared when the
// download ends or anything else is printed.
func TestReplicateProgressTerminal(t *testing.T) {
	p, out, errOut, clock := testPrinter(true)
	p.event(follow.Event{Kind: follow.EventBootstrapStart, File: snapshotFile, Bytes: snapshotFile.Size})
	p.event(follow.Event{Kind: follow.EventProgress, File: snapshotFile, Done: 65536, Bytes: snapshotFile.Size}) // too early to show
	clock.advance(500 * time.Millisecond)
	p.event(follow.Event{Kind: follow.EventProgress, File: snapshotFile, Done: 1_000_000, Bytes: snapshotFile.Size})
	clock.advance(500 * time.Millisecond)
	p.event(follow.Event{Kind: follow.EventProgress, File: snapshotFile, Done: 2_500_000, Bytes: snapshotFile.Size})
	p.event(follow.Event{Kind: follow.EventError, Err: errors.New("slow store")})
	clock.advance(time.Second)
	p.event(follow.Event{Kind: follow.EventProgress, File: snapshotFile, Done: 4_000_000, Bytes: snapshotFile.Size})
	p.event(follow.Event{Kind: follow.EventSnapshotInstalled, File: snapshotFile, Bytes: snapshotFile.Size, Pages: 977, TXID: 7, Took: 2 * time.Second})

	want := "Bootstrapping from snapshot...\n" +
		"\r\033[KDownloading 0000000000000001-0000000000000007.ltx:  25% (1.0 MB of 4.0 MB, 2.0 MB/s)" +
		"\r\033[KDownloading 0000000000000001-0000000000000007.ltx:  62% (2.5 MB of 4.0 MB, 2.5 MB/s)" +
		"\r\033[K" + // cleared for the error line on stderr
		"Downloaded 0000000000000001-0000000000000007.ltx (4.0 MB in 2s)\n" +
		"Applied 977 pages, TXID 7\n"
	if out.String() != want {
		t.Errorf("stdout:\n%q\nwant\n%q", out.String(), want)
	}
	if want := "Error: slow store; retrying every 1s\n"; errOut.String() != want {
		t.Errorf("stderr %q, want %q", errOut.String(), want)
	}
}

// Without a terminal, progress is a plain line every logEvery at most.
func TestReplicateProgressLog(t *testing.T) {
	p, out, _, clock := testPrinter(false)
	unknown := snapshotFile
	unknown.Size = 0 // the store did not say
	p.event(follow.Event{Kind: follow.EventBootstrapStart, File: unknown})
	for i := 1; i <= 24; i++ { // 12 s of reports every 500ms
		clock.advance(500 * time.Millisecond)
		p.event(follow.Event{Kind: follow.EventProgress, File: unknown, Done: int64(i) * 100_000})
	}
	want := "Bootstrapping from snapshot...\n" +
		"Downloading 0000000000000001-0000000000000007.ltx: 1.0 MB (200.0 KB/s)\n" +
		"Downloading 0000000000000001-0000000000000007.ltx: 2.0 MB (200.0 KB/s)\n"
	if out.String() != want {
		t.Errorf("stdout:\n%q\nwant\n%q", out.String(), want)
	}
}

// An error is printed when it starts, a different one only after
// errorRepeat, and the end of the errors once; "Polling" comes once, after
// the first successful poll.
func TestReplicateErrorLines(t *testing.T) {
	p, out, errOut, clock := testPrinter(false)
	poll := func(err string) {
		clock.advance(time.Second)
		s := follow.Status{LastPoll: clock.now(), LastError: err}
		if err != "" {
			p.status(s, false) // the status moves before the event comes
			p.event(follow.Event{Kind: follow.EventError, Err: errors.New(err)})
		}
		p.status(s, true)
	}
	p.status(follow.Status{}, false) // no poll yet
	poll("list: connection refused")
	poll("list: connection refused")
	poll("gap at TXID 5, store at 9")
	poll("gap at TXID 5, store at 10")
	clock.advance(errorRepeat)
	poll("gap at TXID 5, store at 11")
	poll("")
	poll("")
	poll("list: timeout")
	poll("")

	wantErr := "Error: list: connection refused; retrying every 1s\n" +
		"Error: gap at TXID 5, store at 11; retrying every 1s\n" +
		"Recovered: polls succeed again (after 35s of errors)\n" +
		"Error: list: timeout; retrying every 1s\n" +
		"Recovered: polls succeed again (after 1s of errors)\n"
	if errOut.String() != wantErr {
		t.Errorf("stderr:\n%s\nwant\n%s", errOut, wantErr)
	}
	if want := "Polling for updates every 1s...\n"; out.String() != want {
		t.Errorf("stdout %q, want %q", out, want)
	}
}

func TestReplicateEventLines(t *testing.T) {
	p, out, errOut, _ := testPrinter(false)
	l0 := store.FileInfo{Level: 0, MinTXID: 8, MaxTXID: 8, Size: 4096}
	l1 := store.FileInfo{Level: 1, MinTXID: 9, MaxTXID: 0x1f, Size: 40960}
	p.event(follow.Event{Kind: follow.EventApplied, File: l0, Pages: 1, TXID: 8})
	p.event(follow.Event{Kind: follow.EventApplied, File: l1, Pages: 12, TXID: 0x1f})
	p.event(follow.Event{Kind: follow.EventRebootstrap, File: snapshotFile, TXID: 3})
	p.event(follow.Event{Kind: follow.EventRejected, File: l0, Err: errors.New("checksum mismatch")})
	p.event(follow.Event{Kind: follow.EventSnapshotInstalled, File: store.FileInfo{Level: 9, MinTXID: 1, MaxTXID: 2}, Pages: 1, TXID: 2, Took: 1500 * time.Microsecond})
	want := "Applied 0000000000000008-0000000000000008.ltx: 1 page, TXID 8\n" +
		"Applied 0000000000000009-000000000000001f.ltx (L1): 12 pages, TXID 31\n" +
		"Re-bootstrapping: no chain of LTX files leads from TXID 3 to the store's newest TXID; starting over from snapshot 0000000000000001-0000000000000007.ltx\n" +
		"Downloaded 0000000000000001-0000000000000002.ltx (2ms)\n" +
		"Applied 1 page, TXID 2\n"
	if out.String() != want {
		t.Errorf("stdout:\n%s\nwant\n%s", out, want)
	}
	if want := "Rejected L0/0000000000000008-0000000000000008.ltx: checksum mismatch (the replica keeps its last good state)\n"; errOut.String() != want {
		t.Errorf("stderr %q, want %q", errOut, want)
	}
}
