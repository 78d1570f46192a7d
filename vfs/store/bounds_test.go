package store_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/s3test"
)

// A body is never read past the size the listing gave: a longer one (an
// object replaced since the listing, a hostile server) is an error of the
// store, which a later poll retries, and what was read stays bounded.

// readListed lists level 0, opens its one file and reads it all.
func readListed(t *testing.T, st store.Store, change func()) (store.FileInfo, []byte, error) {
	t.Helper()
	files, err := st.ListAfter(context.Background(), 0, 0)
	if err != nil || len(files) != 1 {
		t.Fatalf("list: %v, %v", files, err)
	}
	fi := files[0]
	change()
	rc, err := st.Open(context.Background(), fi)
	if err != nil {
		return fi, nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return fi, b, err
}

func checkTooLong(t *testing.T, st store.Store, fi store.FileInfo, b []byte, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("read %d bytes of %s (listed at %d): no error", len(b), fi, fi.Size)
	}
	if int64(len(b)) > fi.Size || st.Stats().Bytes > 2*fi.Size {
		t.Errorf("read %d bytes (%d counted) of a file listed at %d", len(b), st.Stats().Bytes, fi.Size)
	}
	if store.IsPermanent(err) {
		t.Errorf("a body longer than listed is a passing fault, not a permanent one: %v", err)
	}
	if !strings.Contains(err.Error(), fi.String()) && !strings.Contains(err.Error(), fi.Name()) {
		t.Errorf("the error does not name the file: %v", err)
	}
	t.Logf("%v", err)
}

func TestS3BodyLongerThanListed(t *testing.T) {
	srv := s3test.Start(t, "bkt")
	data := randBytes(4096)
	key := "app/0000/" + ltxName(1, 1)
	srv.WriteObject("bkt", key, data)
	proxy := s3test.NewProxy(t, srv.Endpoint)
	srv.Env(t)
	opts := srv.Options()
	opts.Endpoint = proxy.URL

	t.Run("chunked body with more", func(t *testing.T) {
		st, err := store.Open(context.Background(), srv.URL("bkt", "app"), opts)
		if err != nil {
			t.Fatal(err)
		}
		proxy.Misbehave("GET", s3test.Longer, 1)
		defer proxy.Behave()
		fi, b, err := readListed(t, st, func() {})
		checkTooLong(t, st, fi, b, err)
	})
	t.Run("object replaced since the listing", func(t *testing.T) {
		st, err := store.Open(context.Background(), srv.URL("bkt", "app"), opts)
		if err != nil {
			t.Fatal(err)
		}
		fi, b, err := readListed(t, st, func() { srv.WriteObject("bkt", key, randBytes(64<<10)) })
		checkTooLong(t, st, fi, b, err)
	})
}

func TestFileBodyLongerThanListed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ltx", "0", ltxName(1, 1))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, randBytes(4096), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, b, err := readListed(t, st, func() {
		if err := os.WriteFile(path, randBytes(64<<10), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	checkTooLong(t, st, fi, b, err)
}

// TestListingBounded: a level with more objects than a store can sensibly
// hold (junk included), or a server that keeps saying there is more, stops
// the listing with an error instead of a poll that runs, and grows, for
// ever.
func TestListingBounded(t *testing.T) {
	defer store.SetMaxListed(25)()
	dir := t.TempDir()
	level := filepath.Join(dir, "ltx", "0")
	if err := os.MkdirAll(level, 0o755); err != nil {
		t.Fatal(err)
	}
	srv := s3test.Start(t, "bkt")
	for i := range 30 {
		name := ltxName(ltx.TXID(i+1), ltx.TXID(i+1))
		if i%2 == 0 {
			name = fmt.Sprintf("junk-%d", i)
		}
		if err := os.WriteFile(filepath.Join(level, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		srv.WriteObject("bkt", "app/0000/"+name, []byte("x"))
	}
	fileStore, err := store.OpenFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	s3Store := open(t, srv, "bkt", "app")
	store.SetS3MaxKeys(s3Store, 7)
	for _, st := range []store.Store{fileStore, s3Store} {
		if files, err := st.ListAfter(context.Background(), 0, 0); err == nil || !strings.Contains(err.Error(), "more than 25 objects") {
			t.Errorf("%s: listing 30 objects past a bound of 25: %d files, %v", st, len(files), err)
		}
	}
}
