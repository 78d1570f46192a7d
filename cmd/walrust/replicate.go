package main

// ---------------------------------------------------------------------
// PLACEHOLDER: `walrust replicate` is written by someone else later.
// Replace this whole file; nothing else refers to it but the commands
// list in main.go.
// ---------------------------------------------------------------------

import (
	"context"
	"flag"
	"fmt"
)

var replicateCommand = &command{
	name:    "replicate",
	args:    "SOURCE DB",
	summary: "follow a store into a local read replica (not yet implemented)",
	about:   "Not yet implemented.",
	nargs:   anyArgs,
}

func init() {
	replicateCommand.flags = func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
		return func(_ context.Context, e *env, _ []string) error {
			fmt.Fprintln(e.stderr, "walrust replicate: not yet implemented")
			return exitCode(exitUsage)
		}
	}
}
