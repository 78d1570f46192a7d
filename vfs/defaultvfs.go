package vfs

/*
#include <stdlib.h>
#include "layer.h"
*/
import "C"

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"
)

// Default-VFS mode, for clients that can neither pass a URI nor choose a
// VFS (better-sqlite3, Bun, PHP's SQLite3, Python's sqlite3.connect(path)):
// with WALRUST_DEFAULT_VFS=1 at load, the C router (router.c) becomes
// SQLite's default VFS. It serves a path as a replica when the path has a
// state file or WALRUST_REPLICAS maps it, and passes every other path to
// the VFS that was the default before.

const (
	defaultVFSEnv = "WALRUST_DEFAULT_VFS"
	// WALRUST_REPLICAS maps replicas to sources:
	// /data/app.db=s3://bucket/app;/data/b.db=file:///srv/ltx/b
	replicasEnv = "WALRUST_REPLICAS"
)

// mappedSources is WALRUST_REPLICAS as read at Register: the source of
// each mapped replica, by its name as given (cleaned) and by its full
// pathname as FullPathname makes it. Written once, before the VFS is
// registered; read-only after.
var mappedSources map[string]string

// configureDefault reads WALRUST_DEFAULT_VFS and WALRUST_REPLICAS, before
// anything is registered: a bad value fails the load, saying why.
func configureDefault(getenv func(string) string) error {
	on, err := parseDefaultVFS(getenv(defaultVFSEnv))
	if err != nil {
		return err
	}
	var allowed *sourceList
	if s := strings.TrimSpace(getenv(sourcesEnv)); s != "" {
		if allowed, err = parseSources(s); err != nil {
			return err
		}
	}
	m, err := parseReplicas(getenv(replicasEnv), allowed)
	if err != nil {
		return err
	}
	mappedSources = m
	if !on {
		if len(m) > 0 {
			// The mapping still names the source of a vfs=walrust open, so
			// it is no error; but a plain path would reach SQLite's own VFS
			// and a missing replica be created empty there.
			logger.Warn(fmt.Sprintf("%s is set but %s is not 1: only opens that name vfs=walrust are replicas; a plain path opens an ordinary database (set %s=1 to serve plain paths)",
				replicasEnv, defaultVFSEnv, defaultVFSEnv))
		}
		return nil
	}
	_ = C.walrustRouterEnable() // returns 0: a void(void) function would trip -Wunused-parameter in cgo's wrapper
	for name := range m {
		cs := C.CString(name)
		rc := C.walrustRouterMap(cs)
		C.free(unsafe.Pointer(cs))
		if rc != 0 {
			return fmt.Errorf("%s: out of memory", replicasEnv)
		}
	}
	return nil
}

func parseDefaultVFS(s string) (bool, error) {
	if s = strings.TrimSpace(s); s == "" {
		return false, nil
	}
	on, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("%s=%q: want 1 (walrust is the default VFS) or 0", defaultVFSEnv, s)
	}
	return on, nil
}

// parseReplicas reads WALRUST_REPLICAS: path=source entries separated by
// semicolons, each path absolute and named once, each source one walrust
// can follow (and, with WALRUST_SOURCES set, one it allows).
func parseReplicas(raw string, allowed *sourceList) (map[string]string, error) {
	m := map[string]string{}
	seen := map[string]string{}
	for _, e := range strings.Split(raw, ";") {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		path, source, ok := strings.Cut(e, "=")
		path, source = strings.TrimSpace(path), strings.TrimSpace(source)
		switch {
		case !ok || path == "" || source == "":
			return nil, fmt.Errorf("%s: entry %q is not path=source (example: /data/app.db=s3://bucket/app)", replicasEnv, e)
		case !filepath.IsAbs(path):
			return nil, fmt.Errorf("%s: %q is not an absolute path", replicasEnv, path)
		}
		if _, err := parseSourceURL(source); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", replicasEnv, path, err)
		}
		if allowed != nil {
			if err := allowed.check(source, ""); err != nil {
				return nil, fmt.Errorf("%s: %s: %w", replicasEnv, path, err)
			}
		}
		clean := filepath.Clean(path)
		full := (&walrustVFS{}).FullPathname(clean)
		if first, dup := seen[full]; dup {
			return nil, fmt.Errorf("%s: %s and %s are one file, mapped twice", replicasEnv, first, path)
		}
		seen[full] = path
		m[clean], m[full] = source, source
	}
	return m, nil
}

// mappedSource is the source WALRUST_REPLICAS maps the replica at path
// (a full pathname) to, if any.
func mappedSource(path string) (string, bool) {
	s, ok := mappedSources[path]
	return s, ok
}
