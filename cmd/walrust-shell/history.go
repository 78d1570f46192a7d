package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// maxHistory is how many lines the history keeps (in memory, and what is
// loaded from the file).
const maxHistory = 1000

// history is the interactive shell's line history (a term.History), kept
// in a file across sessions: each entered line is appended to it.
type history struct {
	lines []string // oldest first
	file  *os.File // nil when not persisted
	warn  io.Writer
}

// historyPath is $WALRUST_HISTORY if set (empty: no file), else
// ~/.walrust_history; "" when there is no home directory.
func historyPath() string {
	if p, ok := os.LookupEnv("WALRUST_HISTORY"); ok {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".walrust_history")
}

// openHistory loads the history file at path and opens it for appending.
// Problems with the file are reported on warn and leave an in-memory
// history: the shell works without one.
func openHistory(path string, warn io.Writer) *history {
	h := &history{warn: warn}
	if path == "" {
		return h
	}
	if f, err := os.Open(path); err == nil {
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		read := 0
		for sc.Scan() {
			h.remember(sc.Text())
			read++
		}
		if err := sc.Err(); err != nil {
			fmt.Fprintf(warn, "walrust-shell: read history %s: %v\n", path, err)
		}
		f.Close()
		if read > 2*maxHistory {
			h.compact(path)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(warn, "walrust-shell: read history: %v\n", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		fmt.Fprintf(warn, "walrust-shell: history will not be saved: %v\n", err)
		return h
	}
	h.file = f
	return h
}

// Add records a line entered at the prompt; blank lines and repeats of the
// previous line are not kept.
func (h *history) Add(line string) {
	if !h.remember(line) || h.file == nil {
		return
	}
	if _, err := h.file.WriteString(line + "\n"); err != nil {
		fmt.Fprintf(h.warn, "walrust-shell: history will not be saved: %v\n", err)
		h.file.Close()
		h.file = nil
	}
}

// compact rewrites the file with only the lines kept, so that it does not
// grow without end.
func (h *history) compact(path string) {
	tmp := path + ".tmp"
	err := os.WriteFile(tmp, []byte(strings.Join(h.lines, "\n")+"\n"), 0o600)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		fmt.Fprintf(h.warn, "walrust-shell: compact history: %v\n", err)
	}
}

func (h *history) remember(line string) bool {
	if strings.TrimSpace(line) == "" || (len(h.lines) > 0 && h.lines[len(h.lines)-1] == line) {
		return false
	}
	h.lines = append(h.lines, line)
	if len(h.lines) > maxHistory {
		h.lines = append(h.lines[:0], h.lines[len(h.lines)-maxHistory:]...)
	}
	return true
}

// Len and At make history a term.History: At(0) is the newest line.
func (h *history) Len() int        { return len(h.lines) }
func (h *history) At(i int) string { return h.lines[len(h.lines)-1-i] }

func (h *history) Close() error {
	if h.file == nil {
		return nil
	}
	if err := h.file.Close(); err != nil {
		return fmt.Errorf("close history: %w", err)
	}
	return nil
}
