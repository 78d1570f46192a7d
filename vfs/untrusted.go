package vfs

import (
	"fmt"

	"github.com/walrust/walrust/vfs/replica"
)

// checkOpen refuses, before anything is created or any store contacted,
// the opens that SQL must not be able to make (README "Security"): any SQL
// string can name a replica, through ATTACH.
//
// Without cfg.mayCreate (a read-only connection, mode=ro, or an open
// without SQLITE_OPEN_CREATE) only a replica that walrust made — it has a
// state file — may be opened: a bootstrap would create the file, its lock
// file, log directory and state file; and only a view (as_of=) that is
// built already. The caller sets mayCreate for the live replica of a path
// WALRUST_REPLICAS maps: the operator asked for that bootstrap (not for
// views of it). With
// WALRUST_SOURCES set, the source followed, whether the URI,
// WALRUST_REPLICAS, WALRUST_SOURCE or the state file names it, must be
// one it lists.
func checkOpen(path string, cfg Config) error {
	stateSource, made, err := replica.ReadSource(path)
	if err != nil {
		return err
	}
	// A view (as_of=) needs no live replica; whether it may be built is
	// decided when it is opened (openView).
	if !made && !cfg.mayCreate && cfg.AsOf.IsZero() {
		return fmt.Errorf("%s is not a walrust replica yet (it has no state file), and this open may not create files (a read-only connection, mode=ro, or no SQLITE_OPEN_CREATE): make the replica with an open that may create it, or with walrust replicate", path)
	}
	if cfg.Sources == nil {
		return nil
	}
	switch {
	case cfg.Source != "":
		return cfg.Sources.check(cfg.Source, "")
	case stateSource != "":
		return cfg.Sources.check(stateSource, " (per its state file)")
	}
	return nil // no source at all: the open fails for that
}
