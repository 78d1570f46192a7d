package vfs

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	root "github.com/walrust/walrust"
	"github.com/walrust/walrust/vfs/follow"
	"github.com/walrust/walrust/vfs/store"
)

// Defaults for the URI parameters.
const (
	DefaultInterval = 5 * time.Second
	DefaultTimeout  = 30 * time.Second
)

// Config is how one database is replicated, from its URI parameters, with
// WALRUST_* environment variables as defaults for clients that cannot pass
// URI parameters.
type Config struct {
	Source   string        // source=, WALRUST_SOURCE; may be empty once a state file names it
	Interval time.Duration // interval=, WALRUST_INTERVAL
	// IntervalAsked says an interval was given (not DefaultInterval
	// taken): only then does a second open of a followed file say that
	// the first one's is kept.
	IntervalAsked bool
	Timeout       time.Duration // timeout=, WALRUST_TIMEOUT: how long an open waits for a first snapshot
	MaxInterval   time.Duration // max_interval=, WALRUST_MAX_INTERVAL: idle polls back off up to it; 0: fixed interval
	SnapshotCheck time.Duration // snapshot_check=, WALRUST_SNAPSHOT_CHECK: the snapshot level listed at least this often; 0: 1m
	MaxSize       int64         // max_size=, WALRUST_MAX_SIZE: the largest database a file may describe; 0: 1TiB (replica.DefaultMaxSize)
	MaxHeld       int64         // max_held=, WALRUST_MAX_HELD: what long readers may keep unfolded; 0: the follower's default
	Bootstrap     string        // bootstrap=, WALRUST_BOOTSTRAP: full (default) or lazy (follow.BootstrapLazy)
	MaxLag        time.Duration // max_lag=, WALRUST_MAX_LAG: refuse read transactions while the replica is staler (stale.go); 0: never
	Store         store.Options // endpoint=, region=, path_style= (S3-compatible stores)
	Sources       *sourceList   // WALRUST_SOURCES: the stores an open may follow; nil: any
	// AsOf (as_of=) opens a read-only view of the database as of a past
	// point instead of the live replica (see view.go); zero: the live one.
	AsOf follow.Point

	// mayCreate says the open may create files (SQLITE_OPEN_CREATE, or the
	// live replica of a path WALRUST_REPLICAS maps): a view not built yet
	// needs it.
	mayCreate bool
}

// ownStoreOnly says S3 options come from the environment and the source
// URLs WALRUST_SOURCES lists only, never from a state file.
func (c Config) ownStoreOnly() bool { return c.Sources != nil }

// parseConfig reads a database's URI parameters over the environment.
func parseConfig(params map[string]string, getenv func(string) string) (Config, error) {
	// setting is a setting's value and the name it was given under (the
	// URI parameter's or the environment variable's), so that an error
	// names what the user wrote.
	setting := func(param, env string) (string, string) {
		if v, ok := params[param]; ok {
			return v, param
		}
		return getenv(env), env
	}
	get := func(param, env string) string {
		v, _ := setting(param, env)
		return v
	}
	c := Config{
		Source:   strings.TrimSpace(get("source", "WALRUST_SOURCE")),
		Interval: DefaultInterval,
		Timeout:  DefaultTimeout,
	}
	var err error
	if s, name := setting("interval", "WALRUST_INTERVAL"); s != "" {
		c.IntervalAsked = true
		if c.Interval, err = parseDuration(name, s); err != nil {
			return c, err
		}
		if c.Interval < follow.MinInterval {
			return c, fmt.Errorf("%s=%s is too short (minimum %s)", name, s, follow.MinInterval)
		}
	}
	if s, name := setting("timeout", "WALRUST_TIMEOUT"); s != "" {
		if c.Timeout, err = parseDuration(name, s); err != nil {
			return c, err
		}
	}
	if s, name := setting("max_interval", "WALRUST_MAX_INTERVAL"); s != "" {
		if c.MaxInterval, err = parseDuration(name, s); err != nil {
			return c, err
		}
	}
	if s, name := setting("max_lag", "WALRUST_MAX_LAG"); s != "" {
		if c.MaxLag, err = parseDuration(name, s); err != nil {
			return c, err
		}
	}
	if s, name := setting("snapshot_check", "WALRUST_SNAPSHOT_CHECK"); s != "" {
		if c.SnapshotCheck, err = parseDuration(name, s); err != nil {
			return c, err
		}
		if c.SnapshotCheck < follow.MinInterval {
			return c, fmt.Errorf("%s=%s is too short (minimum %s)", name, s, follow.MinInterval)
		}
	}
	size := func(param, env string) (int64, error) {
		s, name := setting(param, env)
		if s == "" {
			return 0, nil
		}
		n, err := follow.ParseSize(s)
		if err != nil {
			return 0, fmt.Errorf("%s=%s: %w", name, s, err)
		}
		return n, nil
	}
	if s, ok := params["as_of"]; ok {
		if c.AsOf, err = follow.ParsePoint(s); err != nil {
			return c, err
		}
		if c.AsOf.IsZero() {
			return c, fmt.Errorf("as_of=%s: TXID 0 is no point of a store's history", s)
		}
	}
	if c.MaxSize, err = size("max_size", "WALRUST_MAX_SIZE"); err != nil {
		return c, err
	}
	if c.MaxHeld, err = size("max_held", "WALRUST_MAX_HELD"); err != nil {
		return c, err
	}
	b, name := setting("bootstrap", "WALRUST_BOOTSTRAP")
	c.Bootstrap = strings.TrimSpace(b)
	if follow.CheckBootstrap(c.Bootstrap) != nil {
		return c, fmt.Errorf("%s=%q: want %q or %q", name, c.Bootstrap, follow.BootstrapFull, follow.BootstrapLazy)
	}
	if s := strings.TrimSpace(getenv(sourcesEnv)); s != "" {
		if c.Sources, err = parseSources(s); err != nil {
			return c, err
		}
		for _, p := range []string{"endpoint", "region", "path_style"} {
			if _, ok := params[p]; ok {
				return c, fmt.Errorf("%s= is not allowed while %s is set: S3 endpoints and regions come from the environment (AWS_ENDPOINT_URL_S3, AWS_REGION) or from a source URL listed there", p, sourcesEnv)
			}
		}
	}
	c.Store.Endpoint = params["endpoint"]
	c.Store.Region = params["region"]
	if s, ok := params["path_style"]; ok {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return c, fmt.Errorf("path_style=%q: want true or false", s)
		}
		c.Store.PathStyle = &b
	}
	return c, nil
}

func parseDuration(name, s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%s=%q is not a duration (examples: 500ms, 5s, 1m)", name, s)
	case d < 0:
		return 0, fmt.Errorf("%s=%s: must not be negative", name, s)
	}
	return d, nil
}

// logger writes walrust's log lines to stderr. WALRUST_LOG sets the level
// (debug, info, warn, error); the default, warn, keeps an interactive shell
// quiet while still reporting rejected files and failing polls.
// WALRUST_LOG_FORMAT=json makes each line a JSON object (time, level, msg
// and the fields; durations in seconds); text, the default, is slog's
// key=value lines.
var logger = newLogger(os.Getenv("WALRUST_LOG"), os.Getenv("WALRUST_LOG_FORMAT"))

func newLogger(level, format string) *slog.Logger {
	var l slog.Level
	badLevel := level != "" && l.UnmarshalText([]byte(level)) != nil
	if badLevel || level == "" {
		l = slog.LevelWarn
	}
	opts := &slog.HandlerOptions{Level: l}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	format = strings.TrimSpace(format)
	if strings.EqualFold(format, "json") {
		h = root.JSONLogHandler(os.Stderr, l)
	}
	lg := slog.New(h).With("component", "walrust")
	// A misspelt setting is said once, not silently ignored.
	if badLevel {
		lg.Warn(fmt.Sprintf("WALRUST_LOG=%q: want debug, info, warn or error; logging at warn", level))
	}
	if format != "" && !strings.EqualFold(format, "json") && !strings.EqualFold(format, "text") {
		lg.Warn(fmt.Sprintf("WALRUST_LOG_FORMAT=%q: want text or json; writing text", format))
	}
	return lg
}
