package store

import "testing"

func TestCanonical(t *testing.T) {
	for in, want := range map[string]string{
		"file:///":                  "file:///",
		"file:///a/b/":              "file:///a/b",
		"file:/a/b":                 "file:///a/b",
		"file://localhost/a/b/":     "file:///a/b",
		"file:///a/./c/../b":        "file:///a/b",
		"file:///srv/store///":      "file:///srv/store",
		" s3://bucket/app// ":       "s3://bucket/app",
		"s3://bucket":               "s3://bucket",
		"s3://bucket/":              "s3://bucket",
		"s3://bucket/app/?region=x": "s3://bucket/app?region=x",
		"file://host/share":         "file://host/share",
		"relative/dir":              "relative/dir",
	} {
		if got := Canonical(in); got != want {
			t.Errorf("Canonical(%q) = %q, want %q", in, got, want)
		}
	}
}
