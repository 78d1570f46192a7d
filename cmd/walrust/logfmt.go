package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	root "github.com/walrust/walrust"
)

// logFormat is how walrust publish and walrust replicate write their lines
// (--log-format).
type logFormat int

const (
	logPlain logFormat = iota // the default: bare lines, as on a terminal
	logText                   // a timestamp and a level before each line
	logJSON                   // one JSON object per line
)

func (f *logFormat) String() string {
	switch *f {
	case logText:
		return "text"
	case logJSON:
		return "json"
	}
	return ""
}

func (f *logFormat) Set(s string) error {
	switch s {
	case "text":
		*f = logText
	case "json":
		*f = logJSON
	default:
		return errors.New("want text or json")
	}
	return nil
}

// registerLogFormat adds --log-format to a daemon's flags.
func registerLogFormat(fs *flag.FlagSet, f *logFormat) {
	fs.Var(f, "log-format", "write each line as `FORMAT`: text (a timestamp and a level first) or json (one object per line); default: bare lines")
}

// lineLog writes a daemon's lines to the writer each call names (what
// happened on stdout, errors on stderr, as the commands always did), in
// its format. A line is a human message and, for json, fields (db, txid,
// file, pages, err ...): the plain format prints the message as it is, the
// text format after a timestamp and a level.
type lineLog struct {
	format logFormat
	now    func() time.Time
	// prefix comes before each plain or text message (a database's name,
	// when one process follows several); attrs are in every json line
	// (db).
	prefix string
	attrs  []any
}

func newLineLog(format logFormat, attrs ...any) *lineLog {
	return &lineLog{format: format, now: time.Now, attrs: attrs}
}

// line writes msg (without a newline) at level on w.
func (l *lineLog) line(w io.Writer, level slog.Level, msg string, attrs ...any) {
	if l == nil {
		fmt.Fprintf(w, "%s\n", msg)
		return
	}
	switch l.format {
	case logPlain:
		fmt.Fprintf(w, "%s%s\n", l.prefix, msg)
	case logText:
		fmt.Fprintf(w, "%s %-5s %s%s\n", l.now().Format(root.LogTime), level, l.prefix, msg)
	case logJSON:
		h := root.JSONLogHandler(w, slog.LevelDebug)
		r := slog.NewRecord(l.now(), level, msg, 0)
		r.Add(l.attrs...)
		r.Add(attrs...)
		_ = h.Handle(context.Background(), r)
	}
}

// handler is a slog handler on w in the same format, for the follower's
// own log (WALRUST_LOG): json lines for json, slog's text otherwise.
func (l *lineLog) handler(w io.Writer, level slog.Level) slog.Handler {
	if l != nil && l.format == logJSON {
		return root.JSONLogHandler(w, level)
	}
	return slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})
}

// logOpts are a daemon's flags for its lines: --log-format, and for
// walrust replicate --quiet and --summary-every.
type logOpts struct {
	format       logFormat
	quiet        bool
	summaryEvery time.Duration
	summarySet   bool // --summary-every was given
}

// defaultSummaryEvery is how often --quiet prints a summary line.
const defaultSummaryEvery = time.Minute

func (o *logOpts) register(fs *flag.FlagSet, quiet bool) {
	registerLogFormat(fs, &o.format)
	if !quiet {
		return
	}
	fs.BoolVar(&o.quiet, "quiet", false, "leave out the line per applied file; errors, recoveries, start and stop, and a summary every --summary-every stay")
	fs.Func("summary-every", "print a summary line (files applied, TXID, lag) every `DURATION` (default: 1m with --quiet, none without; 0: none)", func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil {
			return errors.New("not a duration (examples: 30s, 1m, 1h)")
		}
		o.summaryEvery, o.summarySet = d, true
		return nil
	})
}

// summary is how often to print a summary line; 0: never.
func (o *logOpts) summary() time.Duration {
	switch {
	case o.summarySet:
		return o.summaryEvery
	case o.quiet:
		return defaultSummaryEvery
	}
	return 0
}
