package vfs

import (
	"io"
	"os"
	"strings"
	"testing"
)

// TestLoggerSettingsMisspelt: a WALRUST_LOG or WALRUST_LOG_FORMAT walrust
// does not know is said once on stderr, with what it wants, not ignored.
func TestLoggerSettingsMisspelt(t *testing.T) {
	for _, c := range []struct {
		level, format string
		want          []string
	}{
		{"zzz", "", []string{`WALRUST_LOG=\"zzz\": want debug, info, warn or error; logging at warn`}},
		{"", "yaml", []string{`WALRUST_LOG_FORMAT=\"yaml\": want text or json; writing text`}},
		{"debug", "json", nil},
		{"", "", nil},
	} {
		got := stderrOf(t, func() { newLogger(c.level, c.format) })
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("WALRUST_LOG=%q WALRUST_LOG_FORMAT=%q: stderr %q lacks %q", c.level, c.format, got, w)
			}
		}
		if c.want == nil && got != "" {
			t.Errorf("WALRUST_LOG=%q WALRUST_LOG_FORMAT=%q: stderr %q; want nothing", c.level, c.format, got)
		}
	}
}

// stderrOf runs fn with os.Stderr going to a pipe, and returns what fn
// wrote there.
func stderrOf(t *testing.T, fn func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = w
	fn()
	os.Stderr = saved
	w.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
