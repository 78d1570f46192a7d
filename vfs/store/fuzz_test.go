package store

import (
	"testing"
	"time"
)

// FuzzParseName: an object name from a listing becomes a file only if it
// is exactly the name the file is then fetched by (the key round-trips),
// with a TXID range that makes sense.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{
		"0000000000000001-0000000000000001.ltx", "0000000000000001-00000000000004d2.ltx",
		"00000000000000AB-00000000000000AB.ltx", "1-2.ltx", ".0000000000000001-0000000000000001.ltx.tmp",
		"0000000000000002-0000000000000001.ltx", "0000000000000000-0000000000000001.ltx", "+000000000000001-0000000000000001.ltx",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		fi, ok := parseName(0, name, 1, time.Time{})
		if !ok {
			return
		}
		if fi.Name() != name {
			t.Fatalf("%q lists as %s: it would be fetched by another name", name, fi.Name())
		}
		if fi.MinTXID == 0 || fi.MinTXID > fi.MaxTXID {
			t.Fatalf("%q lists as TXIDs %s-%s", name, fi.MinTXID, fi.MaxTXID)
		}
	})
}

// FuzzCanonical: a source's canonical form is its own canonical form, so
// that two spellings of one store compare equal once, and stay equal.
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{"file:///a/b/", "file:/a/./b", "file://localhost/a", "s3://b/app/", "s3://b//x/../y?endpoint=http://h", "s3://b", " file:///x ", "%zz", "s3://b/a%2Fb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := Canonical(s)
		if c2 := Canonical(c); c2 != c {
			t.Fatalf("Canonical(%q) = %q, but Canonical(%q) = %q", s, c, c, c2)
		}
	})
}
