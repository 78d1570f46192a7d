package vfs

import (
	"strings"
	"testing"
)

// TestConfigErrorsNameTheSetting: a bad value is reported under the name
// it was given, the URI parameter's or the environment variable's, and a
// negative duration is said to be one, not "not a duration".
func TestConfigErrorsNameTheSetting(t *testing.T) {
	for _, c := range []struct {
		params map[string]string
		env    map[string]string
		want   string
	}{
		{nil, map[string]string{"WALRUST_INTERVAL": "zzz"}, `WALRUST_INTERVAL="zzz" is not a duration`},
		{map[string]string{"interval": "zzz"}, nil, `interval="zzz" is not a duration`},
		{map[string]string{"interval": "-1s"}, nil, "interval=-1s: must not be negative"},
		{nil, map[string]string{"WALRUST_INTERVAL": "1ms"}, "WALRUST_INTERVAL=1ms is too short"},
		{nil, map[string]string{"WALRUST_MAX_LAG": "-5s"}, "WALRUST_MAX_LAG=-5s: must not be negative"},
		{nil, map[string]string{"WALRUST_MAX_SIZE": "lots"}, "WALRUST_MAX_SIZE=lots: "},
		{map[string]string{"timeout": "soon"}, map[string]string{"WALRUST_TIMEOUT": "1s"}, `timeout="soon" is not a duration`},
		{nil, map[string]string{"WALRUST_BOOTSTRAP": "lasy"}, `WALRUST_BOOTSTRAP="lasy": want "full" or "lazy"`},
		{map[string]string{"bootstrap": "ful"}, nil, `bootstrap="ful": want "full" or "lazy"`},
	} {
		_, err := parseConfig(c.params, func(k string) string { return c.env[k] })
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("params %v, env %v: %v; want an error starting %q", c.params, c.env, err, c.want)
		}
	}
}
