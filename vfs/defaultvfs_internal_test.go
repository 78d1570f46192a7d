package vfs

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestParseReplicas: WALRUST_REPLICAS maps absolute paths, each once, to
// sources walrust can follow; anything else fails the load with a message
// that names the variable and the entry.
func TestParseReplicas(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "app.db"), filepath.Join(dir, "b.db")
	m, err := parseReplicas(" "+a+" = s3://bucket/app ;;"+b+"=file:///srv/ltx/b;", nil)
	if err != nil {
		t.Fatal(err)
	}
	full := (&walrustVFS{}).FullPathname(a)
	if m[a] != "s3://bucket/app" || m[full] != "s3://bucket/app" || m[b] != "file:///srv/ltx/b" {
		t.Fatalf("parsed %v", m)
	}
	if m, err := parseReplicas("  ", nil); err != nil || len(m) != 0 {
		t.Fatalf("empty: %v, %v", m, err)
	}
	allowed, err := parseSources("s3://bucket/app")
	if err != nil {
		t.Fatal(err)
	}
	for raw, want := range map[string]string{
		"app.db=s3://bucket/app": "not an absolute path",
		a:                        "is not path=source",
		a + "=":                  "is not path=source",
		"=s3://bucket/app":       "is not path=source",
		a + "=ftp://host/x":      a,
		a + "=s3://b/x;" + dir + "/./app.db=s3://b/y": "mapped twice",
	} {
		_, err := parseReplicas(raw, nil)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), replicasEnv) {
			t.Errorf("%q: %v, want an error saying %q", raw, err, want)
		}
	}
	if _, err := parseReplicas(a+"=s3://other/app", allowed); err == nil || !strings.Contains(err.Error(), sourcesEnv) {
		t.Errorf("a source WALRUST_SOURCES does not allow: %v", err)
	}
	if _, err := parseReplicas(a+"=s3://bucket/app/eu", allowed); err != nil {
		t.Errorf("a source WALRUST_SOURCES allows: %v", err)
	}
	for s, want := range map[string]bool{"": false, "0": false, "1": true, "true": true, " 1 ": true} {
		if got, err := parseDefaultVFS(s); err != nil || got != want {
			t.Errorf("WALRUST_DEFAULT_VFS=%q: %v, %v", s, got, err)
		}
	}
	if _, err := parseDefaultVFS("yes please"); err == nil || !strings.Contains(err.Error(), defaultVFSEnv) {
		t.Errorf("a bad WALRUST_DEFAULT_VFS: %v", err)
	}
}
