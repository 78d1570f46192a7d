package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	dir := t.TempDir()
	local := filepath.Join(dir, "r.db")
	o, err := parseArgs([]string{"--interval", "1s", "s3://b/p", "--local", local, "--endpoint", "http://127.0.0.1:9000", "--path-style", "-c", "SELECT 1", "--region", "auto"})
	if err != nil {
		t.Fatal(err)
	}
	want := options{source: "s3://b/p", local: local, command: "SELECT 1", commandOK: true, interval: "1s",
		endpoint: "http://127.0.0.1:9000", region: "auto", pathStyle: true}
	if o != want {
		t.Errorf("got %+v\nwant %+v", o, want)
	}

	if o, err = parseArgs([]string{"--local", local, "--", "file:///x"}); err != nil || o.source != "file:///x" {
		t.Errorf("after --: %+v, %v", o, err)
	}
	if o, err = parseArgs([]string{"--local", local, "-c", "", "file:///x"}); err != nil || !o.commandOK {
		t.Errorf("empty -c: %+v, %v", o, err)
	}
	if _, err := parseArgs([]string{"--help"}); !errors.Is(err, errHelp) {
		t.Errorf("--help: %v", err)
	}

	// Without SOURCE only an existing replica will do.
	var uerr usageError
	if _, err := parseArgs([]string{"--local", local}); !errors.As(err, &uerr) {
		t.Errorf("no source, no replica: %v, want a usage error", err)
	}
	if err := os.WriteFile(local+stateSuffix, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if o, err := parseArgs([]string{"--local", local}); err != nil || o.source != "" {
		t.Errorf("no source, replica exists: %+v, %v", o, err)
	}

	for _, args := range [][]string{
		{"file:///x"},
		{"--local", local, "a", "b"},
		{"--local", local, "relative/dir"},
		{"--local", local, "--interval", "0s", "file:///x"},
		{"--local", local, "--interval", "fast", "file:///x"},
		{"--local", local, "--timeout", "-5s", "file:///x"},
		{"--local", local, "--nope", "file:///x"},
		{"--local", local, "-c"},
		{"--local", local, "  "},
	} {
		if _, err := parseArgs(args); !errors.As(err, &uerr) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}

func TestURI(t *testing.T) {
	o := options{source: "s3://bucket/pre fix?&#%", local: "/data/my db?#%.db", interval: "250ms", region: "eu-west-1", pathStyle: true}
	got, err := o.uri()
	if err != nil {
		t.Fatal(err)
	}
	want := "file:/data/my%20db%3F%23%25.db?vfs=walrust&source=s3://bucket/pre%20fix%3F%26%23%25&interval=250ms&region=eu-west-1&path_style=true"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}

	o = options{local: "rel.db"}
	got, err = o.uri()
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	if !strings.HasPrefix(got, "file:"+wd) || !strings.HasSuffix(got, "/rel.db?vfs=walrust") {
		t.Errorf("relative path: %s", got)
	}
}
