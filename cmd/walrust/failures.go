package main

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
)

// failureRepeat is how often a failure that lasts is printed again.
const failureRepeat = 5 * time.Minute

// failurePrinter keeps a run of failures to a few lines on w: the first,
// the same failure again at most every failureRepeat (another one at
// once), and one line when it ends.
type failurePrinter struct {
	w      io.Writer
	prefix string
	now    func() time.Time
	log    *lineLog // nil: plain lines

	mu      sync.Mutex
	last    string    // the failure last printed
	printed time.Time // when
	skipped int       // failures not printed since
}

func (p *failurePrinter) failed(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	msg, now := err.Error(), p.now()
	if msg == p.last && now.Sub(p.printed) < failureRepeat {
		p.skipped++
		return
	}
	again := ""
	if p.skipped > 0 {
		again = fmt.Sprintf(" (%d more failures since the last line)", p.skipped)
	}
	p.log.line(p.w, slog.LevelError, p.prefix+msg+again, "err", msg, "not_printed", p.skipped)
	p.last, p.printed, p.skipped = msg, now, 0
}

func (p *failurePrinter) recovered(since time.Time, failed int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	after := p.now().Sub(since)
	p.log.line(p.w, slog.LevelInfo, fmt.Sprintf("%srecovered after %s, %d failed", p.prefix, after.Round(time.Millisecond), failed), "after", after, "failed", failed)
	p.last, p.skipped = "", 0
}
