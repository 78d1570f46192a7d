package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/walrust/walrust/vfs/follow"
	"github.com/walrust/walrust/vfs/store"
)

// errorRepeat is how soon, while polls keep failing, a different error
// message is printed again (a stuck replica's message names the store's
// head, which moves with every file the primary publishes).
const errorRepeat = 30 * time.Second

// progressAfter is how long a snapshot download runs before its progress
// shows.
const progressAfter = 500 * time.Millisecond

// replicatePrinter turns a follower's events and status into the lines of
// `walrust replicate`: what happened on stdout, errors on stderr. On a
// terminal a snapshot download shows one progress line rewritten in place;
// otherwise a plain line every logEvery.
type replicatePrinter struct {
	out, errOut io.Writer
	local       string // the replica, as the command line names it
	tty         bool
	interval    time.Duration
	now         func() time.Time

	mu       sync.Mutex
	progress bool      // a progress line is on the terminal
	dlStart  time.Time // when the snapshot download started
	dlLog    time.Time // when progress was last logged (no terminal)
	polling  bool      // "Polling for updates" was printed
	waited   bool      // another process followed the replica at first
	failing  bool      // the last poll failed
	errMsg   string    // its error, as printed
	errPrint time.Time // when an error was last printed
	errAt    time.Time // when the last failed poll was reported
	errSince time.Time // when polls started failing
}

func newReplicatePrinter(out, errOut io.Writer, local string, interval time.Duration) *replicatePrinter {
	f, ok := out.(*os.File)
	return &replicatePrinter{
		out: out, errOut: errOut, local: local, interval: interval, now: time.Now,
		tty: ok && term.IsTerminal(int(f.Fd())),
	}
}

// waiting says that another process follows the replica, once.
func (p *replicatePrinter) waiting() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.waited {
		p.waited = true
		p.linef(p.out, "Another process follows %s (it holds %s-replica-lock); waiting to take over...\n", p.local, filepath.Base(p.local))
	}
}

// printf prints a line on stdout.
func (p *replicatePrinter) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.linef(p.out, format, args...)
}

// errorf prints a line on stderr.
func (p *replicatePrinter) errorf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.linef(p.errOut, format, args...)
}

// linef prints a line, first clearing a progress line; p.mu is held.
func (p *replicatePrinter) linef(w io.Writer, format string, args ...any) {
	p.clearProgress()
	fmt.Fprintf(w, format, args...)
}

func (p *replicatePrinter) clearProgress() {
	if p.progress {
		fmt.Fprint(p.out, "\r\033[K")
		p.progress = false
	}
}

// fileName is an LTX file's name, with its level unless it is level 0.
func fileName(fi store.FileInfo) string {
	if fi.Level == 0 {
		return fi.Name()
	}
	return fmt.Sprintf("%s (L%d)", fi.Name(), fi.Level)
}

// event is the follower's OnEvent.
func (p *replicatePrinter) event(ev follow.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	switch ev.Kind {
	case follow.EventStart:
		if ev.Err != nil {
			p.linef(p.errOut, "The replica was changed by something other than walrust (%v); bootstrapping it again\n", ev.Err)
		}
		if p.waited {
			p.linef(p.out, "Took over following %s\n", p.local)
		}
		if ev.TXID > 0 {
			p.linef(p.out, "Resuming from TXID %d (%s)\n", uint64(ev.TXID), p.local)
		}
	case follow.EventBootstrapStart:
		p.dlStart, p.dlLog = now, now
		p.linef(p.out, "Bootstrapping from snapshot...\n")
	case follow.EventProgress:
		p.showProgress(ev, now)
	case follow.EventSnapshotInstalled:
		size := ""
		if ev.Bytes > 0 {
			size = formatBytes(ev.Bytes) + " in "
		}
		p.linef(p.out, "Downloaded %s (%s%s)\n", ev.File.Name(), size, ev.Took.Round(time.Millisecond))
		p.linef(p.out, "Applied %s, TXID %d\n", plural(ev.Pages, "page", "pages"), uint64(ev.TXID))
	case follow.EventApplied:
		p.linef(p.out, "Applied %s: %s, TXID %d\n", fileName(ev.File), plural(ev.Pages, "page", "pages"), uint64(ev.TXID))
	case follow.EventRebootstrap:
		p.linef(p.out, "Re-bootstrapping: no chain of LTX files leads from TXID %d to the store's newest TXID; starting over from snapshot %s\n",
			uint64(ev.TXID), ev.File.Name())
	case follow.EventRejected:
		p.linef(p.errOut, "Rejected %s: %v (the replica keeps its last good state)\n", ev.File, ev.Err)
	case follow.EventError:
		msg := fmt.Sprint(ev.Err)
		if !p.failing {
			p.errSince = now
		}
		if !p.failing || msg != p.errMsg && now.Sub(p.errPrint) >= errorRepeat {
			p.linef(p.errOut, "Error: %s; retrying every %s\n", msg, p.interval)
			p.errMsg, p.errPrint = msg, now
		}
		p.failing, p.errAt = true, now
	}
}

// showProgress shows a snapshot download's progress; p.mu is held.
func (p *replicatePrinter) showProgress(ev follow.Event, now time.Time) {
	done := ev.Bytes > 0 && ev.Done >= ev.Bytes
	if p.tty && done {
		p.clearProgress() // the "Downloaded" line follows
		return
	}
	// Nothing for downloads that end within a moment (and no rate from a
	// moment's worth of bytes); then a log line every logEvery at most.
	if done || now.Sub(p.dlStart) < progressAfter || !p.tty && now.Sub(p.dlLog) < logEvery {
		return
	}
	p.dlLog = now
	var rate float64
	if secs := now.Sub(p.dlStart).Seconds(); secs > 0 {
		rate = float64(ev.Done) / secs
	}
	line := fmt.Sprintf("Downloading %s: %s (%s/s)", ev.File.Name(), formatBytes(ev.Done), formatBytes(int64(rate)))
	if ev.Bytes > 0 {
		line = fmt.Sprintf("Downloading %s: %3.0f%% (%s of %s, %s/s)", ev.File.Name(),
			100*float64(ev.Done)/float64(ev.Bytes), formatBytes(ev.Done), formatBytes(ev.Bytes), formatBytes(int64(rate)))
	}
	if p.tty {
		fmt.Fprintf(p.out, "\r\033[K%s", line)
		p.progress = true
		return
	}
	fmt.Fprintln(p.out, line)
}

// status looks at the follower's status: the first successful poll starts
// the steady state, and a successful poll after failed ones ends an error.
func (p *replicatePrinter) status(s follow.Status, ready bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ok := !s.LastPoll.IsZero() && s.LastError == ""
	if !ok {
		return
	}
	if p.failing && s.LastPoll.After(p.errAt) {
		p.failing = false
		p.linef(p.errOut, "Recovered: polls succeed again (after %s of errors)\n", p.now().Sub(p.errSince).Round(time.Second))
	}
	if !p.polling && ready && !p.failing {
		p.polling = true
		p.linef(p.out, "Polling for updates every %s...\n", p.interval)
	}
}
