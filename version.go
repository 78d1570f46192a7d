// Package walrust holds what every walrust program reports about itself:
// its version, and the format of its JSON log lines.
package walrust

import (
	_ "embed"
	"runtime/debug"
	"strings"
)

//go:embed VERSION
var release string

// commit is set at link time by the Makefile (-X): the checkout's commit,
// with ", modified" when it had changes not committed. Without it, the
// commit the Go toolchain recorded, if it did (-buildvcs).
var commit string

// Version is the release named in the VERSION file, followed by the git
// commit the program was built from when the build knows it (make does):
// "0.1.0 (1a2b3c4d5e6f)", or "0.1.0 (1a2b3c4d5e6f, modified)" for a
// checkout with changes not committed.
func Version() string {
	v := strings.TrimSpace(release)
	if commit != "" {
		return v + " (" + commit + ")"
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	var rev string
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return v
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified {
		rev += ", modified"
	}
	return v + " (" + rev + ")"
}
