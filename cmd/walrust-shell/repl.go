package main

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"golang.org/x/term"
)

const (
	prompt         = "walrust> "
	continuePrompt = "   ...> "
)

// console is the terminal the interactive shell talks to. raw puts it in
// raw mode for line editing and returns the function that restores it;
// size reports its width.
type console struct {
	rw   io.ReadWriter
	raw  func() (restore func() error, err error)
	size func() (width int, ok bool)
}

// repl is the interactive loop: a prompt with line editing and history.
// Ctrl-C drops the line and any statement in progress (or, while a
// statement runs, interrupts it); Ctrl-D or .quit leaves.
func (sh *shell) repl(c console, hist term.History) int {
	in := &ctrlCReader{r: c.rw}
	t := term.NewTerminal(struct {
		io.Reader
		io.Writer
	}{in, c.rw}, prompt)
	if hist != nil {
		t.History = hist
	}
	r := &reader{sh: sh}
	for {
		if w, ok := c.size(); ok {
			if err := t.SetSize(w, 24); err != nil {
				sh.report(fmt.Errorf("terminal size: %w", err), "")
			}
		}
		if r.split.pending() {
			t.SetPrompt(continuePrompt)
		} else {
			t.SetPrompt(prompt)
		}
		line, err := readLine(t, c)
		if errors.Is(err, io.EOF) {
			fmt.Fprintln(c.rw)
			break
		}
		if err != nil && !errors.Is(err, term.ErrPasteIndicator) {
			sh.report(fmt.Errorf("read terminal: %w", err), "")
			return 1
		}
		if line == "" && in.takeInterrupt() {
			r.discard()
			continue
		}
		if q := r.line(line); q != nil {
			return q.code
		}
	}
	if q := r.end(); q != nil {
		return q.code
	}
	return 0
}

// readLine reads one line with the terminal in raw mode, and leaves it in
// its normal mode while statements run (so Ctrl-C raises SIGINT).
func readLine(t *term.Terminal, c console) (string, error) {
	restore, err := c.raw()
	if err != nil {
		return "", fmt.Errorf("raw mode: %w", err)
	}
	line, err := t.ReadLine()
	if rerr := restore(); rerr != nil && err == nil {
		err = fmt.Errorf("restore terminal: %w", rerr)
	}
	return line, err
}

// ctrlCReader turns Ctrl-C, which term.Terminal would treat as end of
// input, into "clear the line and submit it" (Ctrl-A Ctrl-K Enter), and
// counts it, so the REPL can tell the resulting empty line from Enter.
type ctrlCReader struct {
	r       io.Reader
	pending []byte

	mu         sync.Mutex
	interrupts int
}

var clearAndSubmit = []byte{1, 11, '\r'}

func (c *ctrlCReader) Read(p []byte) (int, error) {
	if len(c.pending) == 0 {
		buf := make([]byte, len(p))
		n, err := c.r.Read(buf)
		for _, b := range buf[:n] {
			if b == 3 {
				c.pending = append(c.pending, clearAndSubmit...)
				c.mu.Lock()
				c.interrupts++
				c.mu.Unlock()
			} else {
				c.pending = append(c.pending, b)
			}
		}
		if len(c.pending) == 0 {
			return 0, err
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// takeInterrupt reports (once) whether a Ctrl-C was typed.
func (c *ctrlCReader) takeInterrupt() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.interrupts == 0 {
		return false
	}
	c.interrupts--
	return true
}
