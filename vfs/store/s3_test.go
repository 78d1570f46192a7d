package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/s3test"
)

func TestS3KeyLayout(t *testing.T) {
	for _, tc := range []struct {
		url  string
		f    store.FileInfo
		want string
	}{
		{"s3://bkt/app", store.FileInfo{Level: 0, MinTXID: 1, MaxTXID: 5}, "app/0000/0000000000000001-0000000000000005.ltx"},
		{"s3://bkt/app/", store.FileInfo{Level: 9, MinTXID: 1, MaxTXID: 0x1f}, "app/0009/0000000000000001-000000000000001f.ltx"},
		{"s3://bkt/a/b//c/", store.FileInfo{Level: 1, MinTXID: 0xabc, MaxTXID: 0xabd}, "a/b/c/0001/0000000000000abc-0000000000000abd.ltx"},
		{"s3://bkt", store.FileInfo{Level: 0, MinTXID: 2, MaxTXID: 2}, "0000/0000000000000002-0000000000000002.ltx"},
		{"s3://bkt/", store.FileInfo{Level: 10, MinTXID: 2, MaxTXID: 3}, "000a/0000000000000002-0000000000000003.ltx"},
	} {
		got, err := store.S3KeyFor(tc.url, tc.f)
		if err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		if got != tc.want {
			t.Errorf("key of %s under %s = %q, want %q", tc.f, tc.url, got, tc.want)
		}
	}
}

func TestS3URLParsing(t *testing.T) {
	bucket, prefix, opts, err := store.ParseS3URL("s3://bkt/app?endpoint=http://127.0.0.1:1&region=eu-west-1&path_style=false", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if bucket != "bkt" || prefix != "app" || opts.Endpoint != "http://127.0.0.1:1" || opts.Region != "eu-west-1" || opts.PathStyle == nil || *opts.PathStyle {
		t.Errorf("got %q %q %+v", bucket, prefix, opts)
	}
	// Options given by the caller win over the URL's parameters.
	_, _, opts, err = store.ParseS3URL("s3://bkt/app?region=eu-west-1", store.Options{Region: "us-west-2"})
	if err != nil || opts.Region != "us-west-2" {
		t.Errorf("region = %q, %v; want the option's us-west-2", opts.Region, err)
	}
	for _, bad := range []string{
		"s3:///app",                    // no bucket
		"s3://bkt/app?bogus=1",         // unknown parameter
		"s3://bkt/app?path_style=soon", // not a bool
		"s3://AKIAEXAMPLE:hunter2secret@bkt/app",
	} {
		_, _, _, err := store.ParseS3URL(bad, store.Options{})
		if err == nil {
			t.Errorf("%s: no error", bad)
		} else if strings.Contains(err.Error(), "hunter2secret") {
			t.Errorf("%s: error shows the secret: %v", bad, err)
		}
	}
}

func TestS3Endpoints(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:7070":             "http://127.0.0.1:7070",
		"localhost:9000":             "http://localhost:9000",
		"[::1]:9000":                 "http://[::1]:9000",
		"minio.example.com":          "https://minio.example.com",
		"http://10.0.0.5:9000/":      "http://10.0.0.5:9000",
		"https://s3.example.com/gw/": "https://s3.example.com/gw",
	} {
		if got, err := store.NormalizeEndpoint(in); err != nil || got != want {
			t.Errorf("endpoint %q = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"ftp://host", "http://", "https://AKIA:hunter2secret@host", "http://host:port:x/%zz"} {
		_, err := store.NormalizeEndpoint(bad)
		if err == nil {
			t.Errorf("endpoint %q: no error", bad)
		} else if strings.Contains(err.Error(), "hunter2secret") {
			t.Errorf("endpoint error shows the secret: %v", err)
		}
	}
}

// open opens the S3 store at bucket/prefix of srv with srv's credentials in
// the environment.
func open(t *testing.T, srv *s3test.Server, bucket, prefix string) store.Store {
	t.Helper()
	srv.Env(t)
	st, err := store.Open(context.Background(), srv.URL(bucket, prefix), srv.Options())
	if err != nil {
		t.Fatalf("open %s: %v", srv.URL(bucket, prefix), err)
	}
	return st
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func readAll(t *testing.T, st store.Store, f store.FileInfo) []byte {
	t.Helper()
	rc, err := st.Open(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", f, err)
	}
	return b
}

func TestS3RoundTrip(t *testing.T) {
	srv := s3test.Start(t, "bkt")
	st := open(t, srv, "bkt", "app")
	if got, want := st.String(), "s3://bkt/app"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	ctx := context.Background()

	files := []store.FileInfo{
		{Level: 0, MinTXID: 1, MaxTXID: 1},
		{Level: 0, MinTXID: 2, MaxTXID: 3},
		{Level: 0, MinTXID: 4, MaxTXID: 4},
		{Level: store.SnapshotLevel, MinTXID: 1, MaxTXID: 4},
	}
	content := map[store.FileKey][]byte{}
	for i, f := range files {
		data := randBytes(1000 + i*100)
		content[f.Key()] = data
		if err := st.Put(ctx, f, bytes.NewReader(data)); err != nil {
			t.Fatalf("put %s: %v", f, err)
		}
		// Litestream's layout, seen from the server's side.
		onDisk := filepath.Join(srv.Dir, "bkt", "app", fmt.Sprintf("%04x", f.Level), f.Name())
		if b, err := os.ReadFile(onDisk); err != nil || !bytes.Equal(b, data) {
			t.Fatalf("%s not stored as %s: %v", f, onDisk, err)
		}
	}

	got, err := st.ListAfter(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("L0 = %v, want 3 files", got)
	}
	for i, f := range got {
		if f.Level != 0 || f.MinTXID != files[i].MinTXID || f.MaxTXID != files[i].MaxTXID || f.Size != int64(len(content[files[i].Key()])) {
			t.Errorf("L0[%d] = %+v, want %+v with size %d", i, f, files[i], len(content[files[i].Key()]))
		}
		// LastModified has a resolution of one second.
		if age := time.Since(f.ModTime); f.ModTime.IsZero() || age < -2*time.Second || age > time.Minute {
			t.Errorf("L0[%d] ModTime = %v, want about now (LastModified of an object just put)", i, f.ModTime)
		}
	}
	if got, err := st.ListAfter(ctx, 0, 2); err != nil || len(got) != 1 || got[0].MinTXID != 4 {
		t.Errorf("L0 after 2 = %v, %v; want the file 4-4", got, err)
	}
	if got, err := st.ListAfter(ctx, store.SnapshotLevel, 0); err != nil || len(got) != 1 || got[0].MaxTXID != 4 {
		t.Errorf("L9 = %v, %v; want the snapshot 1-4", got, err)
	}
	if got, err := st.ListAfter(ctx, 3, 0); err != nil || len(got) != 0 {
		t.Errorf("empty L3 = %v, %v", got, err)
	}

	before := st.Stats()
	for _, f := range files {
		if b := readAll(t, st, f); !bytes.Equal(b, content[f.Key()]) {
			t.Errorf("%s: read %d bytes, not what was put", f, len(b))
		}
	}
	after := st.Stats()
	var total int64
	for _, b := range content {
		total += int64(len(b))
	}
	if after.Gets-before.Gets != int64(len(files)) || after.Bytes-before.Bytes != total {
		t.Errorf("stats went from %+v to %+v; want %d gets and %d bytes more", before, after, len(files), total)
	}

	if err := st.Delete(ctx, files[0]); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, files[0]); err != nil {
		t.Errorf("deleting a deleted file: %v", err)
	}
	_, err = st.Open(ctx, files[0])
	if !errors.Is(err, store.ErrNotFound) || store.IsPermanent(err) || errors.Is(err, store.ErrStoreNotFound) {
		t.Errorf("open deleted file: %v; want ErrNotFound, not permanent", err)
	}
	if got, err := st.ListAfter(ctx, 0, 0); err != nil || len(got) != 2 {
		t.Errorf("L0 after delete = %v, %v", got, err)
	}
}

// ltxName is the file name Litestream gives an LTX file.
func ltxName(min, max ltx.TXID) string { return ltx.FormatFilename(min, max) }

func TestS3JunkIgnored(t *testing.T) {
	srv := s3test.Start(t, "bkt")
	// Objects written straight into versitygw's directory: it serves them.
	good := ltxName(3, 7)
	for _, key := range []string{
		"app/0000/" + good,
		"app/0000/notes.txt",
		"app/0000/" + ltxName(1, 2) + ".tmp",
		"app/0000/sub/" + ltxName(8, 8),       // deeper than a level
		"app/0000/zzzz.ltx",                   // not TXIDs
		"app/0000/" + ltxName(9, 4),           // min > max
		"app/0000/" + ltxName(0, 4),           // TXID 0 does not exist
		"app/0000/" + strings.ToUpper(good),   // not Litestream's spelling
		"app/0/" + ltxName(10, 10),            // file-replica level naming
		"app/ltx/0/" + ltxName(11, 11),        // file-replica layout
		"application/0000/" + ltxName(12, 12), // a longer prefix
		"0000/" + ltxName(13, 13),             // the bucket's root
	} {
		srv.WriteObject("bkt", key, []byte("x"))
	}
	st := open(t, srv, "bkt", "app")
	got, err := st.ListAfter(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Name() != good || got[0].Size != 1 {
		t.Fatalf("L0 = %v, want only %s", got, good)
	}
	// The direct write is served, byte for byte.
	if b := readAll(t, st, got[0]); string(b) != "x" {
		t.Errorf("read %q", b)
	}

	// The bucket's root is a prefix too.
	root := open(t, srv, "bkt", "")
	if got, err := root.ListAfter(context.Background(), 0, 0); err != nil || len(got) != 1 || got[0].MinTXID != 13 {
		t.Errorf("root L0 = %v, %v; want 13-13", got, err)
	}
}

// writeLevel writes n consecutive single-transaction files 1..n into
// bucket/prefix/level directly on the server's disk.
func writeLevel(t *testing.T, srv *s3test.Server, bucket, prefix string, level, n int) {
	t.Helper()
	dir := filepath.Join(srv.Dir, bucket, prefix, fmt.Sprintf("%04x", level))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Several writers: creating 10,000 files one by one takes seconds.
	const writers = 16
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		go func() {
			var err error
			for i := 1 + w; i <= n && err == nil; i += writers {
				err = os.WriteFile(filepath.Join(dir, ltxName(ltx.TXID(i), ltx.TXID(i))), []byte("l"), 0o644)
			}
			errs <- err
		}()
	}
	for w := 0; w < writers; w++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestS3ListAfterPagination(t *testing.T) {
	srv := s3test.Start(t, "bkt")
	const n = 25
	writeLevel(t, srv, "bkt", "app", 0, n)
	// Files sharing a MinTXID, and a compaction range, sort among them.
	srv.WriteObject("bkt", "app/0000/"+ltxName(10, 12), []byte("c"))
	srv.WriteObject("bkt", "app/0000/"+ltxName(10, 11), []byte("c"))
	st := open(t, srv, "bkt", "app")
	store.SetS3MaxKeys(st, 4)
	ctx := context.Background()

	for _, after := range []ltx.TXID{0, 1, 9, 10, 11, 20, 24, 25, 26, 1 << 40} {
		lists := srv.CountRequests("LIST")
		got, err := st.ListAfter(ctx, 0, after)
		if err != nil {
			t.Fatal(err)
		}
		var want []store.FileInfo
		for i := 1; i <= n; i++ {
			if ltx.TXID(i) > after {
				want = append(want, store.FileInfo{Level: 0, MinTXID: ltx.TXID(i), MaxTXID: ltx.TXID(i), Size: 1})
			}
			if i == 10 && after < 10 {
				want = append(want,
					store.FileInfo{Level: 0, MinTXID: 10, MaxTXID: 11, Size: 1},
					store.FileInfo{Level: 0, MinTXID: 10, MaxTXID: 12, Size: 1})
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("after %d: got %v\nwant %v", after, got, want)
		}
		// One page per 4 keys, at least one request.
		wantLists := max(1, (len(want)+3)/4)
		if d := srv.CountRequests("LIST") - lists; d != wantLists && d != wantLists+1 {
			t.Errorf("after %d: %d LIST requests for %d files in pages of 4", after, d, len(want))
		}
	}
}

// TestS3IdleListCost: a follower that is up to date polls with
// ListAfter(head); each poll must be one LIST request, however many older
// files the level holds.
func TestS3IdleListCost(t *testing.T) {
	for _, files := range []int{10, 10_000} {
		t.Run(fmt.Sprint(files), func(t *testing.T) {
			srv := s3test.Start(t, "bkt")
			start := time.Now()
			writeLevel(t, srv, "bkt", "app", 0, files)
			t.Logf("wrote %d objects into the server's directory in %v", files, time.Since(start))
			st := open(t, srv, "bkt", "app")
			ctx := context.Background()

			// Sanity: the server sees them all.
			all, err := st.ListAfter(ctx, 0, 0)
			if err != nil || len(all) != files {
				t.Fatalf("full listing: %d files, %v", len(all), err)
			}

			const polls = 20
			lists, reqs, stats := srv.CountRequests("LIST"), srv.CountRequests(""), st.Stats()
			start = time.Now()
			for i := 0; i < polls; i++ {
				got, err := st.ListAfter(ctx, 0, ltx.TXID(files))
				if err != nil || len(got) != 0 {
					t.Fatalf("idle poll: %v, %v", got, err)
				}
			}
			elapsed := time.Since(start)
			if d := srv.CountRequests("LIST") - lists; d != polls {
				t.Errorf("%d idle polls made %d LIST requests", polls, d)
			}
			if d := srv.CountRequests("") - reqs; d != polls {
				t.Errorf("%d idle polls made %d requests in all", polls, d)
			}
			if d := st.Stats().Lists - stats.Lists; d != polls {
				t.Errorf("Stats counted %d lists for %d polls", d, polls)
			}
			t.Logf("%d files: %d idle polls = %d LIST requests, %v per poll", files, polls, polls, elapsed/polls)

			// A new file is found by the next poll, still in one request.
			srv.WriteObject("bkt", "app/0000/"+ltxName(ltx.TXID(files+1), ltx.TXID(files+1)), []byte("n"))
			lists = srv.CountRequests("LIST")
			got, err := st.ListAfter(ctx, 0, ltx.TXID(files))
			if err != nil || len(got) != 1 || got[0].MinTXID != ltx.TXID(files+1) {
				t.Errorf("poll after a new file: %v, %v", got, err)
			}
			if d := srv.CountRequests("LIST") - lists; d != 1 {
				t.Errorf("poll with one new file made %d LIST requests", d)
			}
		})
	}
}

func TestS3CABundle(t *testing.T) {
	const bundle = "/etc/ssl/certs/ca-certificates.crt"
	if _, err := os.Stat(bundle); err != nil {
		t.Skipf("no CA bundle at %s", bundle)
	}
	srv := s3test.Start(t, "bkt")
	srv.WriteObject("bkt", "app/0000/"+ltxName(1, 1), []byte("x"))

	t.Run("set", func(t *testing.T) {
		srv.Env(t)
		t.Setenv("AWS_CA_BUNDLE", bundle)
		// The pitfall itself: the SDK refuses a plain client.
		_, err := config.LoadDefaultConfig(context.Background(), config.WithHTTPClient(&http.Client{}))
		t.Logf("LoadDefaultConfig with a plain *http.Client: %v", err)
		st := open(t, srv, "bkt", "app")
		if got, err := st.ListAfter(context.Background(), 0, 0); err != nil || len(got) != 1 {
			t.Errorf("list with AWS_CA_BUNDLE set: %v, %v", got, err)
		}
	})
	t.Run("unset", func(t *testing.T) {
		srv.Env(t)
		s3test.Unsetenv(t, "AWS_CA_BUNDLE")
		st := open(t, srv, "bkt", "app")
		if got, err := st.ListAfter(context.Background(), 0, 0); err != nil || len(got) != 1 {
			t.Errorf("list with AWS_CA_BUNDLE unset: %v, %v", got, err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		srv.Env(t)
		t.Setenv("AWS_CA_BUNDLE", filepath.Join(t.TempDir(), "nope.pem"))
		_, err := store.Open(context.Background(), srv.URL("bkt", "app"), srv.Options())
		if err == nil || !store.IsPermanent(err) {
			t.Errorf("open with a missing CA bundle: %v; want a permanent error", err)
		}
		t.Logf("missing CA bundle: %v", err)
	})
}

// TestS3CABundleTLS: over HTTPS, AWS_CA_BUNDLE is what makes the server's
// certificate trusted.
func TestS3CABundleTLS(t *testing.T) {
	srv := s3test.StartTLS(t, "bkt")
	srv.WriteObject("bkt", "app/0000/"+ltxName(1, 1), []byte("x"))
	if !strings.HasPrefix(srv.Endpoint, "https://") {
		t.Fatalf("endpoint %s", srv.Endpoint)
	}

	t.Run("bundle has the certificate", func(t *testing.T) {
		srv.Env(t)
		t.Setenv("AWS_CA_BUNDLE", srv.CAFile)
		st := open(t, srv, "bkt", "app")
		if got, err := st.ListAfter(context.Background(), 0, 0); err != nil || len(got) != 1 {
			t.Errorf("list over HTTPS: %v, %v", got, err)
		}
		if b := readAll(t, st, store.FileInfo{Level: 0, MinTXID: 1, MaxTXID: 1}); string(b) != "x" {
			t.Errorf("read %q over HTTPS", b)
		}
	})
	for name, bundle := range map[string]string{
		"bundle without it": "/etc/ssl/certs/ca-certificates.crt",
		"no bundle":         "",
	} {
		t.Run(name, func(t *testing.T) {
			srv.Env(t)
			if bundle == "" {
				s3test.Unsetenv(t, "AWS_CA_BUNDLE")
			} else if _, err := os.Stat(bundle); err != nil {
				t.Skipf("no %s", bundle)
			} else {
				t.Setenv("AWS_CA_BUNDLE", bundle)
			}
			start := time.Now()
			_, err := store.Open(context.Background(), srv.URL("bkt", "app"), srv.Options())
			if err == nil || !strings.Contains(err.Error(), "certificate") || !store.IsPermanent(err) {
				t.Errorf("open with an untrusted certificate: %v; want a permanent certificate error", err)
			}
			if el := time.Since(start); el > 2*time.Second {
				t.Errorf("took %v: certificate errors are not worth retrying", el)
			}
			t.Logf("%v", err)
		})
	}
}

func TestS3EndpointFromEnvironment(t *testing.T) {
	srv := s3test.Start(t, "bkt")
	srv.WriteObject("bkt", "app/0000/"+ltxName(1, 1), []byte("x"))
	for _, v := range []string{"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"} {
		t.Run(v, func(t *testing.T) {
			srv.Env(t)
			t.Setenv(v, srv.Endpoint)
			s3test.Unsetenv(t, "AWS_REGION") // custom endpoint: us-east-1 by default
			st, err := store.Open(context.Background(), srv.URL("bkt", "app"), store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got, err := st.ListAfter(context.Background(), 0, 0); err != nil || len(got) != 1 {
				t.Errorf("list: %v, %v", got, err)
			}
		})
	}
	t.Run("URL parameters", func(t *testing.T) {
		srv.Env(t)
		s3test.Unsetenv(t, "AWS_REGION")
		u := srv.URL("bkt", "app") + "?endpoint=" + url.QueryEscape(srv.Endpoint)
		st, err := store.Open(context.Background(), u, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := st.ListAfter(context.Background(), 0, 0); err != nil || len(got) != 1 {
			t.Errorf("list: %v, %v", got, err)
		}
	})
	t.Run("AWS_PROFILE", func(t *testing.T) {
		srv.Env(t)
		s3test.Unsetenv(t, "AWS_ACCESS_KEY_ID")
		s3test.Unsetenv(t, "AWS_SECRET_ACCESS_KEY")
		s3test.Unsetenv(t, "AWS_REGION")
		dir := t.TempDir()
		cfg := filepath.Join(dir, "config")
		creds := filepath.Join(dir, "credentials")
		os.WriteFile(cfg, []byte("[profile walrust]\nregion = us-east-1\nendpoint_url = "+srv.Endpoint+"\n"), 0o600)
		os.WriteFile(creds, []byte("[walrust]\naws_access_key_id = "+srv.AccessKey+"\naws_secret_access_key = "+srv.SecretKey+"\n"), 0o600)
		t.Setenv("AWS_CONFIG_FILE", cfg)
		t.Setenv("AWS_SHARED_CREDENTIALS_FILE", creds)
		t.Setenv("AWS_PROFILE", "walrust")
		st, err := store.Open(context.Background(), srv.URL("bkt", "app"), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := st.ListAfter(context.Background(), 0, 0); err != nil || len(got) != 1 {
			t.Errorf("list: %v, %v", got, err)
		}
	})
	t.Run("no region for AWS", func(t *testing.T) {
		srv.Env(t)
		s3test.Unsetenv(t, "AWS_REGION")
		_, err := store.Open(context.Background(), "s3://bkt/app", store.Options{})
		if err == nil || !strings.Contains(err.Error(), "region") || !store.IsPermanent(err) {
			t.Errorf("open without region or endpoint: %v; want a permanent error about the region", err)
		}
	})
}

func TestS3Errors(t *testing.T) {
	srv := s3test.Start(t, "bkt")
	srv.AddUser("OTHERUSER", "other-user-secret-1234")
	ctx := context.Background()

	check := func(t *testing.T, err error, wants ...string) {
		t.Helper()
		if err == nil {
			t.Fatal("no error")
		}
		t.Logf("error: %v", err)
		for _, w := range wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not say %q", err, w)
			}
		}
		if !store.IsPermanent(err) || store.IsUnreachable(err) {
			t.Errorf("error %q is not permanent, or is unreachable too", err)
		}
		for _, secret := range []string{srv.SecretKey, "wrong-secret-5678", "other-user-secret-1234"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error shows a secret: %q", err)
			}
		}
	}
	// Each of these fails at open, at once, with one request.
	openFails := func(t *testing.T, bucket string, wants ...string) error {
		t.Helper()
		lists, start := srv.CountRequests(""), time.Now()
		_, err := store.Open(ctx, srv.URL(bucket, "app"), srv.Options())
		check(t, err, wants...)
		if d := srv.CountRequests("") - lists; d != 1 {
			t.Errorf("failed open made %d requests, want 1 (no retries)", d)
		}
		if el := time.Since(start); el > 2*time.Second {
			t.Errorf("failed open took %v", el)
		}
		return err
	}

	t.Run("missing bucket", func(t *testing.T) {
		srv.Env(t)
		err := openFails(t, "nobucket", `s3://nobucket/app: bucket "nobucket" does not exist`, "(NoSuchBucket)")
		if !errors.Is(err, store.ErrNotFound) || !errors.Is(err, store.ErrStoreNotFound) {
			t.Errorf("missing bucket: %v is not ErrNotFound and ErrStoreNotFound", err)
		}
	})
	t.Run("unknown access key", func(t *testing.T) {
		s3test.SetEnv(t, "NOSUCHKEY", "wrong-secret-5678")
		err := openFails(t, "bkt", "s3://bkt/app: access denied", "check credentials", "(InvalidAccessKeyId)")
		if !errors.Is(err, store.ErrAccessDenied) {
			t.Errorf("%v is not ErrAccessDenied", err)
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		s3test.SetEnv(t, srv.AccessKey, "wrong-secret-5678")
		openFails(t, "bkt", "s3://bkt/app: access denied", "check credentials", "(SignatureDoesNotMatch)")
	})
	t.Run("access denied", func(t *testing.T) {
		s3test.SetEnv(t, "OTHERUSER", "other-user-secret-1234")
		openFails(t, "bkt", "s3://bkt/app: access denied", "(AccessDenied)")
	})
	t.Run("no credentials", func(t *testing.T) {
		srv.Env(t)
		s3test.Unsetenv(t, "AWS_ACCESS_KEY_ID")
		s3test.Unsetenv(t, "AWS_SECRET_ACCESS_KEY")
		_, err := store.Open(ctx, srv.URL("bkt", "app"), srv.Options())
		check(t, err, "no usable AWS credentials")
	})
	t.Run("bucket removed after open", func(t *testing.T) {
		srv.CreateBucket("gone")
		st := open(t, srv, "gone", "app")
		if err := os.Remove(filepath.Join(srv.Dir, "gone")); err != nil {
			t.Fatal(err)
		}
		_, err := st.ListAfter(ctx, 0, 0)
		check(t, err, `list s3://gone/app L0: bucket "gone" does not exist`)
		_, err = st.Open(ctx, store.FileInfo{Level: 0, MinTXID: 1, MaxTXID: 1})
		check(t, err, `bucket "gone" does not exist`)
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%v is not ErrNotFound", err)
		}
	})
}

func TestS3PutBodies(t *testing.T) {
	srv := s3test.Start(t, "bkt")
	st := open(t, srv, "bkt", "app")
	ctx := context.Background()

	for _, tc := range []struct {
		name string
		size int
		wrap func([]byte) io.Reader
	}{
		{"seekable", 3 << 20, func(b []byte) io.Reader { return bytes.NewReader(b) }},
		{"stream small", 100 << 10, func(b []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(b)) }},
		{"stream large", 3 << 20, func(b []byte) io.Reader { return io.MultiReader(bytes.NewReader(b)) }},
		{"pipe", 2 << 20, func(b []byte) io.Reader {
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			go func() { pw.Write(b); pw.Close() }()
			t.Cleanup(func() { pr.Close() })
			return pr
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := randBytes(tc.size)
			f := store.FileInfo{Level: 1, MinTXID: 1, MaxTXID: ltx.TXID(tc.size)}
			if err := st.Put(ctx, f, tc.wrap(data)); err != nil {
				t.Fatal(err)
			}
			if b := readAll(t, st, f); !bytes.Equal(b, data) {
				t.Errorf("read back %d bytes, not what was put", len(b))
			}
		})
	}

	t.Run("multipart", func(t *testing.T) {
		store.SetS3PartSize(st, 5<<20)
		data := randBytes(12 << 20)
		f := store.FileInfo{Level: store.SnapshotLevel, MinTXID: 1, MaxTXID: 9}
		puts, posts := srv.CountRequests("PUT"), srv.CountRequests("POST")
		if err := st.Put(ctx, f, io.MultiReader(bytes.NewReader(data))); err != nil {
			t.Fatal(err)
		}
		if d := srv.CountRequests("PUT") - puts; d != 3 {
			t.Errorf("%d part uploads, want 3", d)
		}
		if d := srv.CountRequests("POST") - posts; d != 2 {
			t.Errorf("%d POSTs, want 2 (create, complete)", d)
		}
		if b := readAll(t, st, f); !bytes.Equal(b, data) {
			t.Errorf("read back %d bytes, not what was put", len(b))
		}
	})
	t.Run("context canceled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		err := st.Put(cctx, store.FileInfo{Level: 0, MinTXID: 5, MaxTXID: 5}, bytes.NewReader([]byte("x")))
		if !errors.Is(err, context.Canceled) {
			t.Errorf("put with a canceled context: %v", err)
		}
	})
}
