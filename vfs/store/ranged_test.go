package store_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/s3test"
)

// Ranged reads return exactly the bytes asked for, from both stores, and
// refuse ranges the listing does not justify.
func TestOpenRange(t *testing.T) {
	srv := s3test.Start(t, "bkt")
	fileStore, err := store.OpenFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for name, st := range map[string]store.Store{"file": fileStore, "s3": open(t, srv, "bkt", "app")} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			data := randBytes(300_000)
			f := store.FileInfo{Level: store.SnapshotLevel, MinTXID: 1, MaxTXID: 7}
			if err := st.Put(ctx, f, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			files, err := st.ListAfter(ctx, store.SnapshotLevel, 0)
			if err != nil || len(files) != 1 {
				t.Fatalf("list: %v %v", files, err)
			}
			f = files[0]
			for _, r := range [][2]int64{{0, 100}, {100, 1}, {12345, 65536}, {int64(len(data)) - 24, 24}, {0, int64(len(data))}} {
				rc, err := store.OpenRange(ctx, st, f, r[0], r[1])
				if err != nil {
					t.Fatalf("range %v: %v", r, err)
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || !bytes.Equal(got, data[r[0]:r[0]+r[1]]) {
					t.Fatalf("range %v: %d bytes, err %v; want the file's", r, len(got), err)
				}
			}
			for _, r := range [][2]int64{{-1, 10}, {0, 0}, {int64(len(data)) - 10, 11}, {int64(len(data)), 1}} {
				if rc, err := store.OpenRange(ctx, st, f, r[0], r[1]); err == nil {
					rc.Close()
					t.Fatalf("range %v of a %d-byte file: no error", r, len(data))
				}
			}
			unlisted := f
			unlisted.Size = 0
			if _, err := store.OpenRange(ctx, st, unlisted, 0, 10); err == nil {
				t.Fatal("a range of a file listed with no size: no error")
			}
		})
	}
}
