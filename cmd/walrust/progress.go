package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"golang.org/x/term"

	"github.com/walrust/walrust/vfs/publish"
)

// logEvery is how often progress is logged when stderr is not a terminal.
const logEvery = 5 * time.Second

// progressPrinter shows publish progress: one line rewritten in place on a
// terminal, plain log lines every few seconds otherwise.
type progressPrinter struct {
	w     io.Writer
	tty   bool
	db    string
	phase string
	last  time.Time
	log   *lineLog // nil: plain lines
}

func newProgressPrinter(w io.Writer, db string) *progressPrinter {
	f, ok := w.(*os.File)
	return &progressPrinter{w: w, db: db, tty: ok && term.IsTerminal(int(f.Fd()))}
}

func (pp *progressPrinter) report(p publish.Progress) {
	what := p.Phase + " " + pp.db
	if p.File != "" {
		what = p.Phase + " " + p.File
	}
	line := fmt.Sprintf("%s: %3.0f%% (%s of %s, %s/s)", what, p.Percent(),
		formatBytes(p.Done), formatBytes(p.Total), formatBytes(int64(p.Rate())))
	done := p.Done >= p.Total
	if pp.tty {
		if done {
			fmt.Fprint(pp.w, "\r\033[K") // leave the line clean for what follows
		} else {
			fmt.Fprintf(pp.w, "\r\033[K%s", line)
		}
		return
	}
	now := time.Now()
	if p.Phase != pp.phase {
		pp.phase, pp.last = p.Phase, now // a phase's first report is not logged
	}
	switch {
	case done && p.Elapsed >= time.Second:
		pp.log.line(pp.w, slog.LevelInfo, fmt.Sprintf("%s: done, %s in %s (%s/s)", what, formatBytes(p.Total),
			p.Elapsed.Round(time.Millisecond), formatBytes(int64(p.Rate()))), "phase", p.Phase, "bytes", p.Total, "took", p.Elapsed)
	case !done && now.Sub(pp.last) >= logEvery:
		pp.last = now
		pp.log.line(pp.w, slog.LevelInfo, line, "phase", p.Phase, "done_bytes", p.Done, "bytes", p.Total)
	}
}
