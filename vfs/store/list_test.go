package store_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/s3test"
)

// put writes one LTX-named file under a store, for listings.
func putDB(t *testing.T, st store.Store) {
	t.Helper()
	if err := st.Put(context.Background(), store.FileInfo{Level: 0, MinTXID: 1, MaxTXID: 1}, bytes.NewReader([]byte("x"))); err != nil {
		t.Fatal(err)
	}
}

func TestFileListDatabases(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	for _, name := range []string{"b", "a", ".hidden"} {
		st, err := store.Open(ctx, "file://"+filepath.Join(root, name), store.Options{Create: true})
		if err != nil {
			t.Fatal(err)
		}
		putDB(t, st)
	}
	os.Mkdir(filepath.Join(root, "empty"), 0o755) // no ltx/: not a database
	os.WriteFile(filepath.Join(root, "junk"), nil, 0o644)
	st, err := store.Open(ctx, "file://"+root, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := store.ListDatabases(ctx, st)
	if err != nil || !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("ListDatabases = %q, %v; want [a b]", got, err)
	}
	os.RemoveAll(root)
	if _, err := store.ListDatabases(ctx, st); err == nil {
		t.Fatal("a removed directory lists")
	}
}

func TestS3ListDatabases(t *testing.T) {
	srv := s3test.Start(t, "bkt")
	srv.Env(t)
	ctx := context.Background()
	clients := store.NewClients()
	opts := srv.Options()
	opts.Clients = clients
	for _, name := range []string{"t2", "t1", "t3"} {
		st, err := store.Open(ctx, srv.URL("bkt", "tenants/"+name), opts)
		if err != nil {
			t.Fatal(err)
		}
		putDB(t, st)
	}
	srv.WriteObject("bkt", "tenants/notes/readme.txt", []byte("not a database"))
	srv.WriteObject("bkt", "tenants/top.txt", []byte("junk"))
	// Names that hold levels but could not name a local file safely
	// (<local-dir>/<name>.db): hidden, or with a path separator.
	srv.WriteObject("bkt", "tenants/.hidden/0000/0000000000000001-0000000000000001.ltx", []byte("x"))
	srv.WriteObject("bkt", `tenants/a\b/0000/0000000000000001-0000000000000001.ltx`, []byte("x"))
	st, err := store.Open(ctx, srv.URL("bkt", "tenants"), opts)
	if err != nil {
		t.Fatal(err)
	}
	store.SetS3MaxKeys(st, 1) // every page of the listing
	for range 2 {             // the second from what it found
		got, err := store.ListDatabases(ctx, st)
		if err != nil || !reflect.DeepEqual(got, []string{"t1", "t2", "t3"}) {
			t.Fatalf("ListDatabases = %q, %v; want [t1 t2 t3]", got, err)
		}
	}
	if n := clients.Len(); n != 1 {
		t.Errorf("%d S3 clients for 4 stores on one server, want 1", n)
	}
	other := srv.Options()
	other.Clients = clients
	other.Region = "eu-west-1" // which versitygw refuses: it is another client all the same
	store.Open(ctx, srv.URL("bkt", "tenants/t1"), other)
	if n := clients.Len(); n != 2 {
		t.Errorf("%d S3 clients after another region, want 2", n)
	}
}
