// Command walrust-shell is an SQL shell over a walrust read replica: it
// opens a local replica of a database that follows LTX files in a store
// (bootstrapping it if needed) through the walrust VFS, linked in, and runs
// SQL on it interactively, from -c, or from stdin.
package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	_ "github.com/mattn/go-sqlite3"
	"golang.org/x/term"

	"github.com/walrust/walrust"
	"github.com/walrust/walrust/vfs"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is the whole program; it returns the exit status.
func run(args []string, stdin, stdout *os.File, stderr io.Writer) int {
	o, err := parseArgs(args)
	var uerr usageError
	switch {
	case errors.Is(err, errHelp):
		fmt.Fprint(stdout, usageText)
		return 0
	case errors.Is(err, errVersion):
		fmt.Fprintln(stdout, "walrust-shell", walrust.Version())
		return 0
	case errors.As(err, &uerr):
		fmt.Fprintf(stderr, "walrust-shell: %s\n\n%s", uerr.msg, usageText)
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "walrust-shell: %v\n", err)
		return 1
	}
	interactive := !o.commandOK && term.IsTerminal(int(stdin.Fd()))

	db, conn, err := open(o, interactive, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "walrust-shell: %v\n", err)
		return 1
	}
	defer db.Close()
	defer conn.Close()

	out := bufio.NewWriter(stdout)
	defer out.Flush()
	sh := &shell{conn: conn, out: out, errOut: stderr, local: o.local, width: func() int { return 80 }, output: o.output}
	switch {
	case o.commandOK:
		// Like sqlite3 given SQL as an argument: stop at the first error.
		return sh.runScript(strings.NewReader(o.command), false, true)
	case !interactive:
		return sh.runScript(stdin, true, o.bail)
	}
	return runInteractive(sh, stdin, stdout, stderr)
}

// open opens the replica through the walrust VFS, bootstrapping it if it
// is new, on a single connection.
func open(o options, interactive bool, stderr io.Writer) (*sql.DB, *sql.Conn, error) {
	if err := vfs.Register(); err != nil {
		return nil, nil, err
	}
	uri, err := o.uri()
	if err != nil {
		return nil, nil, err
	}
	if interactive {
		if exists, err := replicaExists(o.local); err == nil && !exists {
			fmt.Fprintf(stderr, "Bootstrapping %s from %s ...\n", o.local, o.source)
		}
	}
	db, err := sql.Open("sqlite3", uri)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", o.local, err)
	}
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(context.Background())
	if err == nil {
		// The VFS opens the replica (and waits for a first snapshot) when
		// the first statement runs; run one here so that failures show now.
		var txid int64
		err = conn.QueryRowContext(context.Background(), "PRAGMA walrust_txid").Scan(&txid)
		if err != nil {
			conn.Close()
		}
	}
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("open replica %s: %w (see the walrust log above for the reason)", o.local, withoutErrno(err))
	}
	return db, conn, nil
}

// runInteractive runs the prompt on the terminal at stdin.
func runInteractive(sh *shell, stdin, stdout *os.File, stderr io.Writer) int {
	inFd, outFd := int(stdin.Fd()), int(stdout.Fd())
	width := func() (int, bool) {
		for _, fd := range []int{outFd, inFd} {
			if w, _, err := term.GetSize(fd); err == nil && w > 0 {
				return w, true
			}
		}
		return 0, false
	}
	sh.width = func() int {
		if w, ok := width(); ok {
			return w
		}
		return 80
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	defer signal.Stop(sigs)
	sh.interrupt = sigs

	hist := openHistory(historyPath(), stderr)
	defer func() {
		if err := hist.Close(); err != nil {
			fmt.Fprintf(stderr, "walrust-shell: %v\n", err)
		}
	}()
	fmt.Fprint(stdout, banner(sh))
	c := console{
		rw: struct {
			io.Reader
			io.Writer
		}{stdin, stdout},
		raw: func() (func() error, error) {
			st, err := term.MakeRaw(inFd)
			if err != nil {
				return nil, err
			}
			return func() error { return term.Restore(inFd, st) }, nil
		},
		size: width,
	}
	return sh.repl(c, hist)
}

// banner greets an interactive session with where the replica stands.
func banner(sh *shell) string {
	var raw string
	var st struct {
		Source   string `json:"source"`
		TXID     uint64 `json:"txid"`
		Interval string `json:"interval"`
	}
	err := sh.conn.QueryRowContext(context.Background(), "PRAGMA walrust_status").Scan(&raw)
	if err == nil {
		err = json.Unmarshal([]byte(raw), &st)
	}
	if err != nil {
		return fmt.Sprintf("walrust-shell: %s (status unavailable: %v)\nEnter .help for usage hints.\n", sh.local, err)
	}
	return fmt.Sprintf("walrust-shell: %s at TXID %d, following %s every %s (read-only)\nEnter .help for usage hints.\n",
		sh.local, st.TXID, st.Source, st.Interval)
}
