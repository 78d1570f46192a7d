package main

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mattn/go-sqlite3"
)

// shell runs statements and dot-commands on one connection to the replica
// (one connection, so that temp tables, PRAGMAs and transactions carry
// from one statement to the next).
type shell struct {
	conn   *sql.Conn
	out    *bufio.Writer
	errOut io.Writer
	local  string
	width  func() int // terminal width for .tables
	output output     // how rows are printed (.mode, .headers)

	// interrupt, when set, delivers Ctrl-C while a statement runs
	// (interactive mode); the statement is then cancelled.
	interrupt <-chan os.Signal

	failed bool // some statement or command failed
}

// quitRequest is returned by .quit/.exit: stop reading, exit with code.
type quitRequest struct{ code int }

func (q quitRequest) Error() string { return fmt.Sprintf("quit (status %d)", q.code) }

// reader runs input line by line: a line that starts with '.' when no
// statement is pending is a dot-command; anything else is SQL, run as each
// statement completes.
type reader struct {
	sh     *shell
	split  splitter
	lineNo int
	where  bool // name the line of a failing statement in error messages
	bail   bool // stop at the first error
}

// line handles one line of input. It returns a non-nil quitRequest when
// reading should stop.
func (r *reader) line(text string) *quitRequest {
	r.lineNo++
	if !r.split.pending() {
		if t := strings.TrimSpace(text); strings.HasPrefix(t, ".") {
			err := r.sh.dot(t)
			var q quitRequest
			if errors.As(err, &q) {
				return &q
			}
			if err != nil {
				r.sh.report(err, "")
				return r.bailOut()
			}
			return nil
		}
	}
	for _, st := range r.split.feed(text, r.lineNo) {
		if q := r.run(st); q != nil {
			return q
		}
	}
	return nil
}

// end runs what is left at the end of input.
func (r *reader) end() *quitRequest {
	if st, ok := r.split.flush(); ok {
		return r.run(st)
	}
	return nil
}

// discard drops a statement in progress (Ctrl-C at the prompt).
func (r *reader) discard() { r.split.reset() }

func (r *reader) run(st stmt) *quitRequest {
	if err := r.sh.exec(st.sql); err != nil {
		where := ""
		if r.where {
			where = fmt.Sprintf(" (line %d)", st.line)
		}
		r.sh.report(err, where)
		return r.bailOut()
	}
	return nil
}

func (r *reader) bailOut() *quitRequest {
	if r.bail {
		return &quitRequest{code: 1}
	}
	return nil
}

// runScript reads statements from in until EOF or .quit, and returns the
// exit status: 1 if anything failed.
func (sh *shell) runScript(in io.Reader, where, bail bool) int {
	r := &reader{sh: sh, where: where, bail: bail}
	br := bufio.NewReader(in)
	for {
		text, err := br.ReadString('\n')
		if text != "" {
			if q := r.line(strings.TrimSuffix(strings.TrimSuffix(text, "\n"), "\r")); q != nil {
				return sh.exitCode(q.code)
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			sh.report(fmt.Errorf("read input: %w", err), "")
			return 1
		}
	}
	if q := r.end(); q != nil {
		return sh.exitCode(q.code)
	}
	return sh.exitCode(0)
}

func (sh *shell) exitCode(code int) int {
	if code == 0 && sh.failed {
		return 1
	}
	return code
}

// exec runs one SQL statement and prints its rows.
func (sh *shell) exec(query string) error {
	ctx, done := sh.statementContext()
	defer done()
	rows, err := sh.conn.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	tw := sh.output.writer(sh.out, cols)
	values := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range values {
		ptrs[i] = &values[i]
	}
	for first := true; rows.Next(); first = false {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		if first {
			nameFcntlPragma(query, cols, values)
		}
		tw.row(values)
	}
	werr := tw.close()
	if err := rows.Err(); err != nil {
		return err
	}
	if err := rows.Close(); err != nil {
		return err
	}
	if werr != nil {
		return fmt.Errorf("write output: %w", werr)
	}
	return sh.out.Flush()
}

// nameFcntlPragma gives a sensible column name to the result of a PRAGMA
// that a VFS answers (walrust_txid, walrust_status): SQLite names its one
// column after the value itself.
func nameFcntlPragma(query string, cols []string, first []any) {
	if len(cols) != 1 || formatValue(first[0]).text != cols[0] {
		return
	}
	fields := strings.Fields(query)
	if len(fields) < 2 || !strings.EqualFold(fields[0], "PRAGMA") {
		return
	}
	name := strings.TrimRight(strings.Join(fields[1:], " "), "; ")
	if i := strings.IndexAny(name, "(= "); i >= 0 {
		name = name[:i]
	}
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		name = name[i+1:]
	}
	if name != "" {
		cols[0] = strings.ToLower(name)
	}
}

// statementContext is the context of one statement: in interactive mode,
// Ctrl-C cancels it (mattn/go-sqlite3 then interrupts SQLite).
func (sh *shell) statementContext() (context.Context, func()) {
	if sh.interrupt == nil {
		return context.Background(), func() {}
	}
	for drained := false; !drained; { // a Ctrl-C from before this statement is stale
		select {
		case <-sh.interrupt:
		default:
			drained = true
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	stop := make(chan struct{})
	go func() {
		select {
		case <-sh.interrupt:
			cancel()
		case <-stop:
		}
	}()
	return ctx, func() { close(stop); cancel() }
}

// report prints an error on stderr, after flushing stdout so the two come
// out in order, and remembers that something failed.
func (sh *shell) report(err error, where string) {
	sh.failed = true
	if ferr := sh.out.Flush(); ferr != nil {
		fmt.Fprintf(sh.errOut, "Error: write output: %v\n", ferr)
	}
	fmt.Fprintf(sh.errOut, "Error%s: %s\n", where, describe(err))
}

// describe is an error as the user should read it: SQLite's message, with
// a hint when a write hits the read-only replica.
func describe(err error) string {
	err = withoutErrno(err)
	var se sqlite3.Error
	if errors.As(err, &se) && se.Code == sqlite3.ErrReadonly {
		return err.Error() + " (a walrust replica is read-only: write to the primary database)"
	}
	if errors.Is(err, context.Canceled) || errors.As(err, &se) && se.Code == sqlite3.ErrInterrupt {
		return "interrupted"
	}
	return err.Error()
}
