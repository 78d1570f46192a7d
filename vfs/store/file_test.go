package store_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/walrust/walrust/vfs/store"
)

// A publisher ages snapshots by the ModTime a listing reports, so it must
// be the file's own mtime, not the time of the listing.
func TestFileStoreListModTime(t *testing.T) {
	dir := t.TempDir()
	st, err := store.OpenFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	old := store.FileInfo{Level: store.SnapshotLevel, MinTXID: 1, MaxTXID: 4, Size: 3}
	fresh := store.FileInfo{Level: store.SnapshotLevel, MinTXID: 1, MaxTXID: 9, Size: 3}
	for _, f := range []store.FileInfo{old, fresh} {
		if err := st.Put(ctx, f, bytes.NewReader([]byte("ltx"))); err != nil {
			t.Fatal(err)
		}
	}
	then := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(dir, "ltx", "9", old.Name()), then, then); err != nil {
		t.Fatal(err)
	}
	got, err := st.ListAfter(ctx, store.SnapshotLevel, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("L9 = %v, want 2 files", got)
	}
	if !got[0].ModTime.Equal(then) {
		t.Errorf("%s: ModTime %v, want its mtime %v", got[0], got[0].ModTime, then)
	}
	if age := time.Since(got[1].ModTime); age < 0 || age > time.Minute {
		t.Errorf("%s: ModTime %v, want about now (written just now)", got[1], got[1].ModTime)
	}
	if got[0].Key() != old.Key() || got[0].Key() == got[1].Key() {
		t.Errorf("keys %+v, %+v: want the first to match %+v with its ModTime ignored", got[0].Key(), got[1].Key(), old.Key())
	}
}
