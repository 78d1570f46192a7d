package main

import (
	"fmt"
	"io"
	"log/slog"
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
	log         *lineLog
	// quiet drops the per-file lines; summaryEvery, if not 0, is how
	// often a summary line says what was applied meanwhile.
	quiet        bool
	summaryEvery time.Duration

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
	sumAt    time.Time // when the last summary was printed (or polling began)
	sumFiles int64     // the files applied then (0 before the first)
}

func newReplicatePrinter(out, errOut io.Writer, local string, interval time.Duration) *replicatePrinter {
	f, ok := out.(*os.File)
	p := &replicatePrinter{
		out: out, errOut: errOut, local: local, interval: interval, now: time.Now,
		tty: ok && term.IsTerminal(int(f.Fd())),
	}
	p.log = newLineLog(logPlain, "db", local)
	p.log.now = func() time.Time { return p.now() }
	return p
}

// setLog sets the lines' format, --quiet and --summary-every. Only the
// plain format rewrites a progress line in place on a terminal.
func (p *replicatePrinter) setLog(format logFormat, quiet bool, summaryEvery time.Duration) {
	p.log.format, p.quiet, p.summaryEvery = format, quiet, summaryEvery
	p.tty = p.tty && format == logPlain
}

// waiting says that another process follows the replica, once.
func (p *replicatePrinter) waiting() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.waited {
		p.waited = true
		p.line(p.out, slog.LevelInfo, fmt.Sprintf("Another process follows %s (it holds %s-replica-lock); waiting to take over...", p.local, filepath.Base(p.local)))
	}
}

// info prints a line on stdout.
func (p *replicatePrinter) info(msg string, attrs ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.line(p.out, slog.LevelInfo, msg, attrs...)
}

// problem prints an error line on stderr.
func (p *replicatePrinter) problem(msg string, attrs ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.line(p.errOut, slog.LevelError, msg, attrs...)
}

// notice prints an info line on stderr.
func (p *replicatePrinter) notice(msg string, attrs ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.line(p.errOut, slog.LevelInfo, msg, attrs...)
}

// line prints a line, first clearing a progress line; p.mu is held.
func (p *replicatePrinter) line(w io.Writer, level slog.Level, msg string, attrs ...any) {
	p.clearProgress()
	p.log.line(w, level, msg, attrs...)
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
			p.line(p.errOut, slog.LevelWarn, fmt.Sprintf("The replica was changed by something other than walrust (%v); bootstrapping it again", ev.Err), "err", ev.Err)
		}
		if p.waited {
			p.line(p.out, slog.LevelInfo, fmt.Sprintf("Took over following %s", p.local))
		}
		if ev.TXID > 0 {
			p.line(p.out, slog.LevelInfo, fmt.Sprintf("Resuming from TXID %d (%s)", uint64(ev.TXID), p.local), "txid", uint64(ev.TXID))
		}
	case follow.EventBootstrapStart:
		p.dlStart, p.dlLog = now, now
		p.line(p.out, slog.LevelInfo, "Bootstrapping from snapshot...", "file", ev.File.Name(), "bytes", ev.Bytes)
	case follow.EventProgress:
		p.showProgress(ev, now)
	case follow.EventSnapshotInstalled:
		size := ""
		if ev.Bytes > 0 {
			size = formatBytes(ev.Bytes) + " in "
		}
		p.line(p.out, slog.LevelInfo, fmt.Sprintf("Downloaded %s (%s%s)", ev.File.Name(), size, ev.Took.Round(time.Millisecond)),
			"file", ev.File.Name(), "bytes", ev.Bytes, "took", ev.Took)
		p.line(p.out, slog.LevelInfo, fmt.Sprintf("Applied %s, TXID %d", plural(ev.Pages, "page", "pages"), uint64(ev.TXID)),
			"file", ev.File.Name(), "pages", ev.Pages, "txid", uint64(ev.TXID))
	case follow.EventApplied:
		if !p.quiet {
			p.line(p.out, slog.LevelInfo, fmt.Sprintf("Applied %s: %s, TXID %d", fileName(ev.File), plural(ev.Pages, "page", "pages"), uint64(ev.TXID)),
				"file", ev.File.Name(), "ltx_level", ev.File.Level, "pages", ev.Pages, "txid", uint64(ev.TXID), "took", ev.Took)
		}
	case follow.EventRebootstrap:
		p.line(p.out, slog.LevelWarn, fmt.Sprintf("Re-bootstrapping: no chain of LTX files leads from TXID %d to the store's newest TXID; starting over from snapshot %s",
			uint64(ev.TXID), ev.File.Name()), "txid", uint64(ev.TXID), "file", ev.File.Name())
	case follow.EventRejected:
		p.line(p.errOut, slog.LevelError, fmt.Sprintf("Rejected %s: %v (the replica keeps its last good state)", ev.File, ev.Err),
			"file", ev.File.Name(), "err", ev.Err)
	case follow.EventError:
		msg := fmt.Sprint(ev.Err)
		if !p.failing {
			p.errSince = now
		}
		if !p.failing || msg != p.errMsg && now.Sub(p.errPrint) >= errorRepeat {
			p.line(p.errOut, slog.LevelError, fmt.Sprintf("Error: %s; retrying every %s", msg, p.interval), "err", msg, "retry", p.interval)
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
	p.log.line(p.out, slog.LevelInfo, line, "file", ev.File.Name(), "done_bytes", ev.Done, "bytes", ev.Bytes)
}

// status looks at the follower's status: the first successful poll starts
// the steady state, and a successful poll after failed ones ends an error;
// every summaryEvery after that, a summary line.
func (p *replicatePrinter) status(s follow.Status, ready bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.polling && p.summaryEvery > 0 && p.now().Sub(p.sumAt) >= p.summaryEvery {
		p.summary(s)
	}
	ok := !s.LastPoll.IsZero() && s.LastError == ""
	if !ok {
		return
	}
	if p.failing && s.LastPoll.After(p.errAt) {
		p.failing = false
		p.line(p.errOut, slog.LevelInfo, fmt.Sprintf("Recovered: polls succeed again (after %s of errors)", p.now().Sub(p.errSince).Round(time.Second)),
			"after", p.now().Sub(p.errSince))
	}
	if !p.polling && ready && !p.failing {
		p.polling = true
		// The first summary counts from the start: with --quiet, the files
		// applied while catching up have no line of their own.
		p.sumAt = p.now()
		p.line(p.out, slog.LevelInfo, fmt.Sprintf("Polling for updates every %s...", p.interval), "interval", p.interval, "txid", uint64(s.TXID))
	}
}

// summary prints what was applied since the last summary; p.mu is held.
func (p *replicatePrinter) summary(s follow.Status) {
	files := s.FilesApplied - p.sumFiles
	p.sumAt, p.sumFiles = p.now(), s.FilesApplied
	msg := fmt.Sprintf("Summary: applied %s, TXID %d, lag %.1fs", plural(int(files), "file", "files"), uint64(s.TXID), s.LagSeconds)
	attrs := []any{"files", files, "txid", uint64(s.TXID), "lag_seconds", s.LagSeconds}
	if s.LastError != "" {
		msg += "; polls failing: " + s.LastError
		attrs = append(attrs, "err", s.LastError)
	}
	p.line(p.out, slog.LevelInfo, msg, attrs...)
}
