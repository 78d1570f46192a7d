package walrust

import (
	"io"
	"log/slog"
)

// LogTime is the time format of walrust's log lines: RFC 3339 with
// milliseconds.
const LogTime = "2006-01-02T15:04:05.000Z07:00"

// JSONLogHandler writes one JSON object per line on w (time, level, msg
// and the fields), the way every walrust program does for json logs: the
// time as LogTime, durations in seconds.
func JSONLogHandler(w io.Writer, level slog.Leveler) slog.Handler {
	return slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: jsonAttr})
}

func jsonAttr(_ []string, a slog.Attr) slog.Attr {
	switch v := a.Value; {
	case a.Key == slog.TimeKey && v.Kind() == slog.KindTime:
		return slog.String(slog.TimeKey, v.Time().Format(LogTime))
	case v.Kind() == slog.KindDuration:
		return slog.Float64(a.Key, v.Duration().Seconds())
	}
	return a
}
