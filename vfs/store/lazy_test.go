package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/walrust/walrust/vfs/store"
)

// TestOpenLater: a store opened later fails each use with the open's error
// until the open succeeds, and then is the store itself.
func TestOpenLater(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	st := store.OpenLater("file://"+dir, store.Options{})
	if got, want := st.String(), "file://"+dir; got != want {
		t.Errorf("String %q, want %q", got, want)
	}
	ctx := context.Background()
	if _, err := st.ListAfter(ctx, 0, 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("list before the directory exists: %v; want not found", err)
	}
	if s := st.Stats(); s != (store.Stats{}) {
		t.Errorf("stats before an open: %+v", s)
	}
	if err := os.MkdirAll(filepath.Join(dir, "ltx", "0"), 0o755); err != nil {
		t.Fatal(err)
	}
	name := "0000000000000001-0000000000000001.ltx"
	if err := os.WriteFile(filepath.Join(dir, "ltx", "0", name), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	files, err := st.ListAfter(ctx, 0, 0)
	if err != nil || len(files) != 1 || files[0].Name() != name {
		t.Fatalf("list once the directory exists: %v, %v", files, err)
	}
	if s := st.Stats(); s.Lists != 1 {
		t.Errorf("stats after one list: %+v, want 1 list", s)
	}
}
