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
		// A canonical source names the same store as what it was made
		// from: an escaped '?' in a prefix used to come out as a real one,
		// and the next parse took what followed for S3 options.
		"s3://b/app%3Fendpoint=http://evil": "s3://b/app%3Fendpoint=http:/evil",
		"file:///srv/my store/":             "file:///srv/my store",
		"file:///srv/100%25":                "file:///srv/100%25",
		"file:///srv/a%20":                  "file:///srv/a%20",
	} {
		if got := Canonical(in); got != want {
			t.Errorf("Canonical(%q) = %q, want %q", in, got, want)
		}
	}
}
