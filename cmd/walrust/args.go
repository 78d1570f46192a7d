package main

import (
	"context"
	"errors"
	"flag"
	"regexp"
	"strconv"
	"time"

	"github.com/walrust/walrust/vfs/store"
)

// flagName finds a flag's name in the flag package's errors ("flag needs
// an argument: -local", "invalid value "x" for flag -interval: …").
var flagName = regexp.MustCompile(`(: |flag )-([a-z][a-z0-9-]*)`)

// durationVar is fs.DurationVar with an error that gives examples (the
// flag package's says "parse error"); usage says the default.
func durationVar(fs *flag.FlagSet, p *time.Duration, name string, def time.Duration, usage string) {
	*p = def
	fs.Func(name, usage, func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil {
			return errors.New("not a duration (examples: 500ms, 1s, 5m, 24h)")
		}
		*p = d
		return nil
	})
}

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
			// The flag package names a flag with one dash; the help and
			// the README, with two.
			return nil, usageError{flagName.ReplaceAllString(err.Error(), "$1--$2")}
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
	fs.StringVar(&s.region, "region", "", "the `REGION` of the S3 bucket (default: from the AWS configuration)")
	fs.Var(&s.pathStyle, "path-style", "address S3 buckets by path, not by host name (default: decided by the endpoint)")
}

func (s *storeFlags) options() store.Options {
	return store.Options{Endpoint: s.endpoint, Region: s.region, PathStyle: s.pathStyle.v}
}

// checkSource rejects a source URL that cannot name a store, as a usage
// error.
func checkSource(raw string) error {
	if err := store.Check(raw); err != nil {
		return usagef("%v", err)
	}
	return nil
}

// openStore opens a source; create makes a file:// directory that does not
// exist yet (publishing creates its destination).
func openStore(ctx context.Context, raw string, flags *storeFlags, create bool) (store.Store, error) {
	if err := checkSource(raw); err != nil {
		return nil, err
	}
	opts := flags.options()
	opts.Create = create
	return store.Open(ctx, raw, opts)
}
