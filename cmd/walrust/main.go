// Command walrust publishes SQLite databases as LTX files, follows a store
// into a local read replica, and reports what a store holds. Subcommands:
//
//	walrust publish DB DEST [--interval D]              publish a database's changes
//	walrust replicate SOURCE --local DB [--interval D]  follow a store into a local replica
//	walrust status SOURCE [--json]                      what a store holds
//	walrust restore SOURCE -o DB [--txid N | --time T]  a plain database as of a point
//	walrust version                                     the version (also --version)
//
// Exit codes: 0 success, 1 runtime failure, 2 usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	root "github.com/walrust/walrust"
)

const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// command is one subcommand.
type command struct {
	name    string
	args    string // the positional part of the synopsis
	summary string
	about   string // more text for --help
	flags   func(fs *flag.FlagSet) func(ctx context.Context, env *env, args []string) error
	nargs   int // positional arguments required, or anyArgs
}

const anyArgs = -1

// env is what a subcommand writes to.
type env struct {
	stdout, stderr io.Writer
	// log, set by a daemon's flags, writes the error that ends it in its
	// --log-format.
	log *lineLog
}

var commands = []*command{publishCommand, statusCommand, replicateCommand, restoreCommand, promoteCommand}

func main() {
	os.Exit(run(context.Background(), os.Args[1:], &env{stdout: os.Stdout, stderr: os.Stderr}))
}

// run is walrust with arguments args; it returns the exit code.
func run(ctx context.Context, args []string, e *env) int {
	if len(args) == 0 {
		fmt.Fprintln(e.stderr, "walrust: missing subcommand")
		printUsage(e.stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "version", "-version", "--version":
		fmt.Fprintln(e.stdout, "walrust", root.Version())
		return exitOK
	case "-h", "-help", "--help", "help":
		if name == "help" && len(args) > 1 {
			if c := lookup(args[1]); c != nil {
				printCommandUsage(e.stdout, c, c.newFlagSet())
				return exitOK
			}
			fmt.Fprintf(e.stderr, "walrust help: unknown subcommand %q\n", args[1])
			printUsage(e.stderr)
			return exitUsage
		}
		printUsage(e.stdout)
		return exitOK
	}
	c := lookup(name)
	if c == nil {
		fmt.Fprintf(e.stderr, "walrust: unknown subcommand %q\n", name)
		printUsage(e.stderr)
		return exitUsage
	}
	return c.run(ctx, e, args[1:])
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// usageError is a mistake in how walrust was called: exit code 2.
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

// exitCode ends a subcommand with that code; it has printed what it had to.
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit code %d", int(c)) }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func (c *command) newFlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("walrust "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors and usage are printed by run
	fs.Usage = func() {}
	return fs
}

// run parses the subcommand's arguments and runs it.
func (c *command) run(ctx context.Context, e *env, args []string) int {
	fs := c.newFlagSet()
	body := c.flags(fs)
	pos, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		printCommandUsage(e.stdout, c, fs)
		return exitOK
	}
	if err == nil && c.nargs != anyArgs && len(pos) != c.nargs {
		noun := "arguments"
		if c.nargs == 1 {
			noun = "argument"
		}
		err = usagef("want %d %s (%s), got %d", c.nargs, noun, c.args, len(pos))
	}
	if err == nil {
		err = body(ctx, e, pos)
	}
	var ue usageError
	var code exitCode
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &code):
		return int(code)
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "walrust %s: %v\n", c.name, err)
		fmt.Fprintf(e.stderr, "Usage: walrust %s %s [flags]\n", c.name, c.args)
		printFlags(e.stderr, fs)
		fmt.Fprintf(e.stderr, "Run 'walrust %s --help' for more.\n", c.name)
		return exitUsage
	case e.log != nil:
		e.log.line(e.stderr, slog.LevelError, fmt.Sprintf("walrust %s: %v", c.name, err), "err", err)
		return exitFailure
	default:
		fmt.Fprintf(e.stderr, "walrust %s: %v\n", c.name, err)
		return exitFailure
	}
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: walrust <subcommand> [arguments] [flags]")
	fmt.Fprintln(w)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "  %-10s %s\n", "version", "print walrust's version (also --version)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'walrust <subcommand> --help' for its arguments and flags.")
}

func printCommandUsage(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: walrust %s %s [flags]\n\n%s\n\n", c.name, c.args, strings.TrimSpace(c.about))
	printFlags(w, fs)
}

// printFlags lists the flags the way they are usually typed, with "--".
func printFlags(w io.Writer, fs *flag.FlagSet) {
	var lines [][2]string
	width := 0
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		left := "--" + f.Name
		if len(f.Name) == 1 {
			left = "-" + f.Name // -o, as other tools spell it
		}
		if name != "" {
			left += " " + name
		}
		width = max(width, len(left))
		lines = append(lines, [2]string{left, usage})
	})
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(w, "Flags (before or after the arguments):")
	for _, l := range lines {
		fmt.Fprintf(w, "  %-*s  %s\n", width, l[0], l[1])
	}
}
