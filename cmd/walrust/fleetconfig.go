package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/walrust/walrust/vfs/follow"
	"github.com/walrust/walrust/vfs/store"
)

// fleetConfig is a walrust replicate --config file: defaults, and the
// replicas to follow.
type fleetConfig struct {
	metricsAddr string
	maxLag      time.Duration
	entries     []fleetEntry
}

// fleetSettings are what every entry may set, and the file's top level
// sets for all.
type fleetSettings struct {
	interval, maxInterval time.Duration
	discoverEvery         time.Duration
	maxSize               int64
	store                 store.Options // endpoint, region, path style
}

// fleetEntry is one item of replicas: a source followed into local, or a
// prefix whose databases are each followed into localDir/<name>.db.
type fleetEntry struct {
	line          int
	source, local string // source entries
	discover, dir string // discover entries: the prefix, local-dir
	fleetSettings
}

// The keys a config file knows.
var (
	settingKeys = []string{"interval", "max-interval", "max-size", "discover-every", "endpoint", "region", "path-style"}
	topKeys     = append([]string{"replicas", "metrics-addr", "max-lag"}, settingKeys...)
	entryKeys   = append([]string{"source", "local", "discover", "local-dir"}, settingKeys...)
)

// loadFleetConfig reads and checks a config file: every error names the
// file and line.
func loadFleetConfig(path string) (*fleetConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	c, err := parseFleetConfig(b, filepath.Dir(abs))
	if err != nil {
		return nil, fmt.Errorf("%s:%w", path, err)
	}
	return c, nil
}

// lineError is an error at a line of the file; loadFleetConfig puts the
// file's name before it.
func lineErr(n *yaml.Node, format string, args ...any) error {
	return fmt.Errorf("%d: %s", n.Line, fmt.Sprintf(format, args...))
}

// parseFleetConfig parses a config file's text; relative local paths are
// taken from dir.
func parseFleetConfig(b []byte, dir string) (*fleetConfig, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		// yaml's messages start "yaml: line N: ..."
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if rest, ok := strings.CutPrefix(msg, "line "); ok {
			return nil, errors.New(rest)
		}
		return nil, fmt.Errorf("1: %s", msg)
	}
	if len(doc.Content) == 0 {
		return nil, errors.New("1: empty: want replicas: and at least one entry")
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil, lineErr(top, "want a mapping (interval:, replicas:, ...)")
	}
	c := &fleetConfig{maxLag: time.Minute}
	defaults := fleetSettings{interval: 5 * time.Second, discoverEvery: time.Minute}
	var replicas *yaml.Node
	err := eachKey(top, topKeys, func(k string, v *yaml.Node) error {
		switch k {
		case "replicas":
			replicas = v
		case "metrics-addr":
			return scalar(v, &c.metricsAddr)
		case "max-lag":
			return duration(v, &c.maxLag)
		default:
			return setting(&defaults, k, v)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if replicas == nil {
		return nil, lineErr(top, "no replicas: list the databases to follow")
	}
	if replicas.Kind != yaml.SequenceNode {
		return nil, lineErr(replicas, "replicas: want a list of entries (- source: ...)")
	}
	locals := map[string]int{} // local file or directory → line
	for _, item := range replicas.Content {
		e, err := parseEntry(item, defaults, dir)
		if err != nil {
			return nil, err
		}
		where := e.local
		if e.discover != "" {
			where = e.dir
		}
		if line, ok := locals[where]; ok {
			return nil, lineErr(item, "%s is the local file of the entry at line %d too", where, line)
		}
		locals[where] = e.line
		c.entries = append(c.entries, e)
	}
	for _, e := range c.entries { // a file in a discover entry's directory
		if e.local != "" && strings.HasSuffix(e.local, ".db") {
			if line, ok := locals[filepath.Dir(e.local)]; ok {
				return nil, fmt.Errorf("%d: %s is in the local-dir of the discover entry at line %d", e.line, e.local, line)
			}
		}
	}
	return c, nil
}

func parseEntry(item *yaml.Node, defaults fleetSettings, dir string) (fleetEntry, error) {
	e := fleetEntry{line: item.Line, fleetSettings: defaults}
	if item.Kind != yaml.MappingNode {
		return e, lineErr(item, "want an entry (source: and local:, or discover: and local-dir:)")
	}
	err := eachKey(item, entryKeys, func(k string, v *yaml.Node) error {
		switch k {
		case "source", "discover":
			p := &e.source
			if k == "discover" {
				p = &e.discover
			}
			if err := scalar(v, p); err != nil {
				return err
			}
			if err := store.Check(*p); err != nil {
				return lineErr(v, "%v", err)
			}
			*p = store.Canonical(*p)
		case "local", "local-dir":
			p := &e.local
			if k == "local-dir" {
				p = &e.dir
			}
			if err := scalar(v, p); err != nil {
				return err
			}
			if *p == "" {
				return lineErr(v, "%s: empty", k)
			}
			if !filepath.IsAbs(*p) {
				*p = filepath.Join(dir, *p)
			}
			*p = filepath.Clean(*p)
		default:
			return setting(&e.fleetSettings, k, v)
		}
		return nil
	})
	switch {
	case err != nil:
		return e, err
	case e.source != "" && e.discover != "":
		return e, lineErr(item, "an entry has source: or discover:, not both")
	case e.source != "" && e.local == "":
		return e, lineErr(item, "source %s: no local: the replica file to keep", e.source)
	case e.source != "" && e.dir != "":
		return e, lineErr(item, "local-dir: goes with discover:; a source: has local:")
	case e.discover != "" && e.dir == "":
		return e, lineErr(item, "discover %s: no local-dir: the directory of the replicas", e.discover)
	case e.discover != "" && e.local != "":
		return e, lineErr(item, "local: goes with source:; a discover: has local-dir:")
	case e.source == "" && e.discover == "":
		return e, lineErr(item, "an entry needs source: (and local:) or discover: (and local-dir:)")
	case e.maxInterval != 0 && e.maxInterval <= e.interval:
		// As on the command line: a back-off bound that is no longer than
		// the interval is no back-off, and surely not what was meant.
		return e, lineErr(item, "max-interval %s: must be longer than interval %s, which idle polls back off from (leave it out for no back-off)", e.maxInterval, e.interval)
	}
	if fi, err := os.Stat(e.local); e.local != "" && err == nil && fi.IsDir() {
		return e, lineErr(item, "local %s is a directory, not a database file", e.local)
	}
	return e, nil
}

// eachKey calls fn for each key of a mapping, refusing unknown and
// repeated ones.
func eachKey(m *yaml.Node, known []string, fn func(k string, v *yaml.Node) error) error {
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		kn, v := m.Content[i], m.Content[i+1]
		k := kn.Value
		ok := false
		for _, x := range known {
			ok = ok || x == k
		}
		switch {
		case !ok:
			return lineErr(kn, "unknown key %q (known here: %s)", k, strings.Join(known, ", "))
		case seen[k]:
			return lineErr(kn, "%s: given twice", k)
		}
		seen[k] = true
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

func scalar(v *yaml.Node, p *string) error {
	if v.Kind != yaml.ScalarNode {
		return lineErr(v, "want a single value")
	}
	*p = strings.TrimSpace(v.Value)
	return nil
}

func duration(v *yaml.Node, p *time.Duration) error {
	var s string
	if err := scalar(v, &s); err != nil {
		return err
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return lineErr(v, "%q is not a duration (examples: 500ms, 1s, 5m)", s)
	}
	*p = d
	return nil
}

// setting sets one of the keys both levels know.
func setting(s *fleetSettings, k string, v *yaml.Node) error {
	switch k {
	case "interval":
		if err := duration(v, &s.interval); err != nil {
			return err
		}
		if s.interval < follow.MinInterval {
			return lineErr(v, "interval %s: must be at least %s", s.interval, follow.MinInterval)
		}
	case "max-interval":
		return duration(v, &s.maxInterval)
	case "discover-every":
		if err := duration(v, &s.discoverEvery); err != nil {
			return err
		}
		if s.discoverEvery < 100*time.Millisecond {
			return lineErr(v, "discover-every %s: must be at least 100ms", s.discoverEvery)
		}
	case "max-size":
		var str string
		if err := scalar(v, &str); err != nil {
			return err
		}
		n, err := follow.ParseSize(str)
		if err != nil {
			return lineErr(v, "max-size: %v", err)
		}
		s.maxSize = n
	case "endpoint":
		return scalar(v, &s.store.Endpoint)
	case "region":
		return scalar(v, &s.store.Region)
	case "path-style":
		var str string
		if err := scalar(v, &str); err != nil {
			return err
		}
		b, err := strconv.ParseBool(str)
		if err != nil {
			return lineErr(v, "path-style: want true or false")
		}
		s.store.PathStyle = &b
	}
	return nil
}
