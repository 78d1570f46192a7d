package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/walrust/walrust/vfs/follow"
)

const usageText = `walrust-shell: an SQL shell over a walrust read replica.

Usage:
  walrust-shell [SOURCE] --local REPLICA.db [flags]

SOURCE is the store the primary publishes LTX files to: file:///abs/dir or
s3://bucket/prefix. It may be left out once REPLICA.db exists: its state file
names the source. A missing replica is bootstrapped from the newest snapshot.

Flags (before or after SOURCE):
  --local PATH       the local replica file (required)
  -c SQL             run SQL (statements and dot-commands) and exit
  --bail             stop at the first error when reading statements from stdin
  --interval DUR     how often to poll the store (default 5s, or $WALRUST_INTERVAL)
  --timeout DUR      how long to wait for a first snapshot (default 30s, or $WALRUST_TIMEOUT)
  --endpoint URL     S3-compatible endpoint, e.g. http://127.0.0.1:9000
  --region R         S3 region
  --path-style       use path-style S3 addressing (most S3-compatible servers)
  -column            print results in aligned columns (the default)
  -list              print values separated by '|'
  -csv               print CSV (RFC 4180; NULL is an empty field)
  -json              print each statement's rows as a JSON array of objects
                     (NULL as null, blobs as hex strings)
  -line              print one "column = value" line per value
  -header, -noheader print column names (the default) or not
  --version          print the version and exit
  -h, --help         show this help

With a terminal on stdin it gives a prompt with line editing and history
(~/.walrust_history, or $WALRUST_HISTORY; empty disables it). Otherwise it
reads statements from stdin. A statement ends at ';' and may span lines.
Type .help in the shell for the dot-commands. The exit status is 1 if any
statement failed (-c or stdin), 2 for bad usage.

Examples:
  walrust-shell file:///var/lib/ltx --local /tmp/app.db
  walrust-shell s3://bucket/app --local app.db -c 'SELECT count(*) FROM users'
  walrust-shell --local app.db -json -c 'SELECT * FROM users LIMIT 10'
  echo 'PRAGMA walrust_txid;' | walrust-shell --local app.db
`

// options are the parsed command line.
type options struct {
	source    string
	local     string
	command   string
	commandOK bool // -c was given (possibly empty)
	bail      bool
	interval  string
	timeout   string
	endpoint  string
	region    string
	pathStyle bool
	output    output // -column, -list, -csv, -json, -line; -header, -noheader
}

// errHelp asks for the usage text on stdout and exit status 0.
var errHelp = errors.New("help requested")

// errVersion asks for the version on stdout and exit status 0.
var errVersion = errors.New("version requested")

// usageError is bad usage: its message, then the usage text, go to stderr
// and the exit status is 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// parseArgs parses the command line. Flags may come before or after the
// positional SOURCE; "--" ends the flags.
func parseArgs(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("walrust-shell", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&o.local, "local", "", "")
	fs.Func("c", "", func(s string) error { o.command, o.commandOK = s, true; return nil })
	fs.BoolVar(&o.bail, "bail", false, "")
	fs.StringVar(&o.interval, "interval", "", "")
	fs.StringVar(&o.timeout, "timeout", "", "")
	fs.StringVar(&o.endpoint, "endpoint", "", "")
	fs.StringVar(&o.region, "region", "", "")
	fs.BoolVar(&o.pathStyle, "path-style", false, "")
	version := fs.Bool("version", false, "")
	for _, m := range outputModes {
		fs.BoolFunc(string(m), "", func(string) error { o.output.mode = m; return nil })
	}
	fs.BoolFunc("header", "", func(string) error { o.output.noHeader = false; return nil })
	fs.BoolFunc("noheader", "", func(string) error { o.output.noHeader = true; return nil })

	var positional []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			return o, errHelp
		}
		if err != nil {
			return o, usageError{err.Error()}
		}
		if *version {
			return o, errVersion
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}

	switch len(positional) {
	case 0:
	case 1:
		o.source = strings.TrimSpace(positional[0])
		if o.source == "" {
			return o, usagef("SOURCE is empty")
		}
	default:
		return o, usagef("one SOURCE expected, got %d arguments: %s", len(positional), strings.Join(positional, " "))
	}
	if o.local == "" {
		return o, usagef("--local is required: the path of the local replica file")
	}
	for _, d := range []struct{ name, value string }{{"interval", o.interval}, {"timeout", o.timeout}} {
		if d.value == "" {
			continue
		}
		v, err := time.ParseDuration(d.value)
		if err != nil || v < 0 || (d.name == "interval" && v == 0) {
			return o, usagef("--%s %q is not a positive duration (examples: 500ms, 5s, 1m)", d.name, d.value)
		}
		if d.name == "interval" && v < follow.MinInterval {
			return o, usagef("--interval %s: must be at least %s", d.value, follow.MinInterval)
		}
	}
	if o.source != "" && !strings.Contains(o.source, "://") {
		return o, usagef("SOURCE %q is not a URL: use file:///abs/dir or s3://bucket/prefix", o.source)
	}
	if o.source == "" {
		exists, err := replicaExists(o.local)
		if err != nil {
			return o, err
		}
		if !exists {
			return o, usagef("SOURCE is required: %s is not a walrust replica yet", o.local)
		}
	}
	return o, nil
}

// stateSuffix names the replica's state file next to the database: the
// file that records which source the replica follows (see vfs/replica).
const stateSuffix = "-replica-state"

// replicaExists reports whether local has a walrust state file, so that it
// can be opened without a source.
func replicaExists(local string) (bool, error) {
	abs, err := filepath.Abs(local)
	if err != nil {
		return false, fmt.Errorf("resolve %s: %w", local, err)
	}
	_, err = os.Stat(abs + stateSuffix)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("check replica %s: %w", local, err)
	}
}

// uri is the SQLite URI that opens the replica through the walrust VFS.
// Only the parameters given on the command line are set, so the VFS's
// defaults and WALRUST_* environment variables apply to the rest.
func (o options) uri() (string, error) {
	abs, err := filepath.Abs(o.local)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", o.local, err)
	}
	q := []string{"vfs=walrust"}
	add := func(key, value string) {
		if value != "" {
			q = append(q, key+"="+uriEscape(value))
		}
	}
	add("source", o.source)
	add("interval", o.interval)
	add("timeout", o.timeout)
	add("endpoint", o.endpoint)
	add("region", o.region)
	if o.pathStyle {
		add("path_style", "true")
	}
	return "file:" + uriEscape(abs) + "?" + strings.Join(q, "&"), nil
}

// uriEscape percent-encodes everything SQLite's URI parser (or mattn's
// parsing of the query) could take for syntax. SQLite decodes %HH in both
// the path and the parameter values.
func uriEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			strings.IndexByte("-._~/:@,", c) >= 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
