package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"

	"github.com/walrust/walrust/vfs/store"
)

// parseArgs parses fs's flags wherever they stand among the positional
// arguments (flag.FlagSet stops at the first positional one), so that
// "walrust publish app.db file:///x --interval 1s" works. After "--"
// everything is positional. Flag errors are usage errors; -h and --help
// return flag.ErrHelp.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
			return nil, err
		} else if err != nil {
			return nil, usageError{err.Error()}
		}
		rest := fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// optionalBool is a boolean flag that knows whether it was given.
type optionalBool struct{ v *bool }

func (b *optionalBool) String() string {
	if b == nil || b.v == nil {
		return ""
	}
	return strconv.FormatBool(*b.v)
}

func (b *optionalBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("want true or false")
	}
	b.v = &v
	return nil
}

func (b *optionalBool) IsBoolFlag() bool { return true }

// storeFlags are the S3 options of a source, the flag form of the URI
// parameters endpoint=, region= and path_style= (which an s3:// URL may
// also carry; the flags win).
type storeFlags struct {
	endpoint, region string
	pathStyle        optionalBool
}

func (s *storeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.endpoint, "endpoint", "", "`URL` of an S3-compatible server (default: AWS)")
	fs.StringVar(&s.region, "region", "", "S3 `region` (default: from the AWS configuration)")
	fs.Var(&s.pathStyle, "path-style", "address S3 buckets by path, not by host name (default: decided by the endpoint)")
}

func (s *storeFlags) options() store.Options {
	return store.Options{Endpoint: s.endpoint, Region: s.region, PathStyle: s.pathStyle.v}
}

// checkSource rejects a source URL that cannot name a store, as a usage
// error, and returns the directory of a file:// source ("" for S3).
func checkSource(raw string) (dir string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", usagef("source %q: %v", raw, err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" || u.Opaque != "" || !filepath.IsAbs(u.Path) {
			return "", usagef("source %q: a file source is file:///absolute/dir", raw)
		}
		return u.Path, nil
	case "s3":
		if u.Host == "" {
			return "", usagef("source %q: an S3 source is s3://bucket or s3://bucket/prefix", raw)
		}
		return "", nil
	case "":
		return "", usagef("source %q has no scheme: use file:///absolute/dir or s3://bucket/prefix", raw)
	default:
		return "", usagef("source %q: unknown scheme %q: use file:///absolute/dir or s3://bucket/prefix", raw, u.Scheme)
	}
}

// openStore opens a source; create makes a file:// directory that does not
// exist yet (publishing creates its destination).
func openStore(ctx context.Context, raw string, flags *storeFlags, create bool) (store.Store, error) {
	dir, err := checkSource(raw)
	if err != nil {
		return nil, err
	}
	if dir != "" && create {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
	}
	st, err := store.Open(ctx, raw, flags.options())
	if err != nil {
		return nil, err
	}
	return st, nil
}
