package vfs

import (
	"strings"
	"testing"
)

// TestSourcesMatch: WALRUST_SOURCES prefixes compare in canonical form, on
// path segments, with the store's host and S3 options exact.
func TestSourcesMatch(t *testing.T) {
	l, err := parseSources(" s3://bucket/app/ ,file:///srv/stores,, s3://other, s3://minio/app?endpoint=http://10.0.0.1:9000 ")
	if err != nil {
		t.Fatal(err)
	}
	for src, want := range map[string]bool{
		"s3://bucket/app":                                true,
		"s3://bucket/app/":                               true,
		"s3://bucket/app/eu":                             true,
		"s3://bucket//app/./eu":                          true,
		"s3://bucket/app2":                               false,
		"s3://bucket":                                    false,
		"s3://bucket/app/../secret":                      false,
		"s3://bucket/app?endpoint=http://x":              false,
		"s3://bucket/app?region=eu-west-1":               false,
		"s3://bucket.evil/app":                           false,
		"file:///srv/stores":                             true,
		"file:/srv/stores/a":                             true,
		"file://localhost/srv/stores/a/":                 true,
		"file:///srv/stores-other":                       false,
		"file:///srv/stores/../etc":                      false,
		"file:///srv/stores/%252E%252E/etc":              true, // a directory named "%2E%2E": Canonical keeps the escape, store.Open decodes it once
		"file://host/srv/stores":                         false,
		"file:///srv":                                    false,
		"s3://other":                                     true,
		"s3://other/any/prefix":                          true,
		"s3://minio/app?endpoint=http://10.0.0.1:9000":   true,
		"s3://minio/app/x?endpoint=http://10.0.0.1:9000": true,
		"s3://minio/app":                                 false,
		"s3://minio/app?endpoint=http://10.0.0.2:9000":   false,
		"http://bucket/app":                              false,
		"relative/dir":                                   false,
		"":                                               false,
	} {
		err := l.check(src, "")
		if got := err == nil; got != want {
			t.Errorf("%q: allowed=%v (%v), want %v", src, got, err, want)
		}
	}

	for _, bad := range []string{"bucket/app", "http://host/x", "file://host/x", "s3:///app"} {
		if _, err := parseSources(bad); err == nil || !strings.Contains(err.Error(), "WALRUST_SOURCES") {
			t.Errorf("WALRUST_SOURCES=%q: %v, want an error naming the variable", bad, err)
		}
	}
	if l, err := parseSources(","); err != nil || l.check("file:///x", "") == nil {
		t.Errorf("WALRUST_SOURCES with no entry allows a source (%v); it should allow none", err)
	}
}

// TestSourcesConfig: with WALRUST_SOURCES set, URI parameters may not
// choose an S3 endpoint, region or addressing; without it they may.
func TestSourcesConfig(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == sourcesEnv {
				return v
			}
			return ""
		}
	}
	for _, p := range []string{"endpoint", "region", "path_style"} {
		params := map[string]string{"source": "s3://bucket/app", p: "true"}
		if _, err := parseConfig(params, env("s3://bucket")); err == nil || !strings.Contains(err.Error(), p+"= is not allowed") {
			t.Errorf("%s= under WALRUST_SOURCES: %v", p, err)
		}
		if _, err := parseConfig(params, env("")); err != nil {
			t.Errorf("%s= without WALRUST_SOURCES: %v", p, err)
		}
	}
	if _, err := parseConfig(map[string]string{}, env("bucket/app")); err == nil {
		t.Error("a bad WALRUST_SOURCES entry is accepted")
	}
}
