package vfs

import (
	"github.com/walrust/walrust/vfs/follow"
	"testing"
)

// FuzzParseConfig: whatever a URI or the environment says, parsing never
// panics, and a configuration it accepts is one walrust can run with; with
// WALRUST_SOURCES set, no URI may name an endpoint, and an allowed source
// is allowed however it is spelt.
func FuzzParseConfig(f *testing.F) {
	f.Add("s3://bucket/app", "1s", "30s", "1TiB", "", "http://127.0.0.1:9000", "true")
	f.Add("file:///srv/ltx", "10ms", "0", "500GB", "file:///srv", "", "")
	f.Add(" file:/x/./y/ ", "-1s", "soon", "0", "s3://b/app,file:///x", "", "maybe")
	f.Fuzz(func(t *testing.T, source, interval, timeout, maxSize, sources, endpoint, pathStyle string) {
		params := map[string]string{"source": source, "interval": interval, "timeout": timeout, "max_size": maxSize}
		if endpoint != "" {
			params["endpoint"] = endpoint
		}
		if pathStyle != "" {
			params["path_style"] = pathStyle
		}
		env := map[string]string{sourcesEnv: sources}
		c, err := parseConfig(params, func(k string) string { return env[k] })
		if err != nil {
			return
		}
		if c.Interval < follow.MinInterval || c.Timeout < 0 || c.MaxSize < 0 {
			t.Fatalf("accepted %+v", c)
		}
		if c.Sources != nil && c.Store.Endpoint != "" {
			t.Fatalf("endpoint %q accepted while %s=%q", c.Store.Endpoint, sourcesEnv, sources)
		}
		if c.Sources != nil && c.Source != "" && c.Sources.check(c.Source, "source=") == nil {
			for _, spelling := range []string{c.Source + "/", c.Source + "/."} {
				if err := c.Sources.check(spelling, "source="); err != nil {
					t.Fatalf("%s= %q allows %q but not %q: %v", sourcesEnv, sources, c.Source, spelling, err)
				}
			}
		}
	})
}
