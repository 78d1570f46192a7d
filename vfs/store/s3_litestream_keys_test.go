package store_test

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/s3test"
)

// literalS3 is an S3 server (ListObjectsV2 and GetObject, path-style) that
// keeps keys exactly as given, as AWS S3 does: "/app/0000/x", "./0000/x"
// and "app/0000/x" are three different objects. versitygw's posix backend
// cleans such keys into file paths, so it cannot hold the key forms
// Litestream writes for some configurations (see TestS3LitestreamKeyForms).
type literalS3 struct {
	bucket  string
	mu      sync.Mutex
	objects map[string][]byte
	lists   atomic.Int64
}

func startLiteralS3(t *testing.T, bucket string) (*literalS3, store.Options) {
	t.Helper()
	s := &literalS3{bucket: bucket, objects: map[string][]byte{}}
	srv := httptest.NewServer(s) // a plain handler: no path cleaning
	t.Cleanup(srv.Close)
	s3test.SetEnv(t, "AKIDLITERAL", "literal-secret")
	pathStyle := true
	return s, store.Options{Endpoint: srv.URL, Region: "us-east-1", PathStyle: &pathStyle}
}

func (s *literalS3) put(key string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objects[key] = data
}

type listResult struct {
	XMLName        xml.Name `xml:"ListBucketResult"`
	Name           string
	Prefix         string
	KeyCount       int
	MaxKeys        int
	Delimiter      string `xml:",omitempty"`
	IsTruncated    bool
	Contents       []listObject
	CommonPrefixes []listPrefix
}

type listObject struct {
	Key          string
	Size         int
	ETag         string
	LastModified string
	StorageClass string
}

type listPrefix struct{ Prefix string }

func (s *literalS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if r.URL.RawPath != "" {
		path = r.URL.RawPath
	}
	rest, ok := strings.CutPrefix(path, "/"+s.bucket)
	if !ok || r.Method != http.MethodGet {
		http.Error(w, "not supported", http.StatusNotImplemented)
		return
	}
	if rest == "" || rest == "/" {
		s.list(w, r.URL.Query())
		return
	}
	key := strings.TrimPrefix(rest, "/")
	s.mu.Lock()
	data, ok := s.objects[key]
	s.mu.Unlock()
	if !ok {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `<Error><Code>NoSuchKey</Code><Message>no such key</Message><Key>%s</Key></Error>`, key)
		return
	}
	w.Header().Set("ETag", `"e`+strconv.Itoa(len(data))+`"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.Header().Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
	w.Write(data)
}

func (s *literalS3) list(w http.ResponseWriter, q map[string][]string) {
	s.lists.Add(1)
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	prefix, delim, startAfter := get("prefix"), get("delimiter"), get("start-after")
	s.mu.Lock()
	var keys []string
	for k := range s.objects {
		keys = append(keys, k)
	}
	s.mu.Unlock()
	sort.Strings(keys)
	res := listResult{Name: s.bucket, Prefix: prefix, MaxKeys: 1000, Delimiter: delim}
	seen := map[string]bool{}
	for _, k := range keys {
		if !strings.HasPrefix(k, prefix) || k <= startAfter {
			continue
		}
		if delim != "" {
			if i := strings.Index(k[len(prefix):], delim); i >= 0 {
				cp := k[:len(prefix)+i+len(delim)]
				if !seen[cp] {
					seen[cp] = true
					res.CommonPrefixes = append(res.CommonPrefixes, listPrefix{cp})
				}
				continue
			}
		}
		s.mu.Lock()
		size := len(s.objects[k])
		s.mu.Unlock()
		res.Contents = append(res.Contents, listObject{Key: k, Size: size, ETag: `"e"`, LastModified: "2026-01-01T00:00:00.000Z", StorageClass: "STANDARD"})
	}
	res.KeyCount = len(res.Contents) + len(res.CommonPrefixes)
	w.Header().Set("Content-Type", "application/xml")
	io.WriteString(w, xml.Header)
	xml.NewEncoder(w).Encode(res)
}

// TestS3LitestreamKeyForms: Litestream v0.5.18 builds keys as its configured
// path + "/" + "%04x/<name>", the path as written in litestream.yml, so
// "path: /app" stores "/app/0000/…", "path: app/" stores "app//0000/…", no
// path stores "/0000/…", and "url: s3://bucket" stores "./0000/…" (its
// path cleans to "."). A walrust source s3://bucket/app (or s3://bucket)
// must find the files in each case, and once it has, poll with one LIST.
func TestS3LitestreamKeyForms(t *testing.T) {
	snap := store.FileInfo{Level: store.SnapshotLevel, MinTXID: 1, MaxTXID: 5}
	l0 := []store.FileInfo{{Level: 0, MinTXID: 6, MaxTXID: 6}, {Level: 0, MinTXID: 7, MaxTXID: 7}}
	for _, tc := range []struct {
		litestream string // how litestream.yml names the place
		base       string // the key prefix Litestream writes under
		source     string // walrust's source
	}{
		{"url: s3://bkt/app", "app/", "s3://bkt/app"},
		{"path: app", "app/", "s3://bkt/app"},
		{"path: /app", "/app/", "s3://bkt/app"},
		{"path: app/", "app//", "s3://bkt/app"},
		{"path: /app/", "/app//", "s3://bkt/app"},
		{"no path", "/", "s3://bkt"},
		{"url: s3://bkt", "./", "s3://bkt"},
		{"path at the root, plain", "", "s3://bkt"},
		{"nested path: /a/b", "/a/b/", "s3://bkt/a/b"},
	} {
		t.Run(tc.litestream, func(t *testing.T) {
			srv, opts := startLiteralS3(t, "bkt")
			// Something else in the bucket, and an empty look-alike.
			srv.put("other/0000/"+ltxName(1, 1), []byte("other"))
			srv.put("app/notes.txt", []byte("x"))
			srv.put(tc.base+"0009/"+snap.Name(), []byte("snapshot"))
			for _, f := range l0 {
				srv.put(tc.base+"0000/"+f.Name(), []byte("l0 "+f.Name()))
			}
			ctx := context.Background()
			st, err := store.Open(ctx, tc.source, opts)
			if err != nil {
				t.Fatal(err)
			}
			snaps, err := st.ListAfter(ctx, store.SnapshotLevel, 0)
			if err != nil || len(snaps) != 1 || snaps[0].MaxTXID != 5 {
				t.Fatalf("snapshots: %v, %v", snaps, err)
			}
			files, err := st.ListAfter(ctx, 0, 6)
			if err != nil || len(files) != 1 || files[0].MinTXID != 7 {
				t.Fatalf("L0 after 6: %v, %v", files, err)
			}
			rc, err := st.Open(ctx, files[0])
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || string(data) != "l0 "+files[0].Name() {
				t.Fatalf("read %s: %q, %v", files[0], data, err)
			}
			// Found once: an idle poll is one LIST again.
			before := srv.lists.Load()
			if got, err := st.ListAfter(ctx, 0, 7); err != nil || len(got) != 0 {
				t.Fatalf("idle poll: %v, %v", got, err)
			}
			if d := srv.lists.Load() - before; d != 1 {
				t.Errorf("idle poll made %d LIST requests", d)
			}
		})
	}
}

// TestS3LitestreamKeyFormsLater: a store opened before Litestream has
// written anything finds its files once they appear, and while it is empty
// a listing costs a LIST per key form, not more.
func TestS3LitestreamKeyFormsLater(t *testing.T) {
	srv, opts := startLiteralS3(t, "bkt")
	ctx := context.Background()
	st, err := store.Open(ctx, "s3://bkt/app", opts)
	if err != nil {
		t.Fatal(err)
	}
	before := srv.lists.Load()
	if got, err := st.ListAfter(ctx, store.SnapshotLevel, 0); err != nil || len(got) != 0 {
		t.Fatalf("empty store: %v, %v", got, err)
	}
	if d := srv.lists.Load() - before; d != 2 {
		t.Errorf("listing an empty store made %d LIST requests, want 2 (app/, /app/)", d)
	}
	srv.put("/app/0009/"+ltxName(1, 3), []byte("snapshot"))
	got, err := st.ListAfter(ctx, store.SnapshotLevel, 0)
	if err != nil || len(got) != 1 || got[0].MaxTXID != 3 {
		t.Fatalf("after Litestream's first snapshot: %v, %v", got, err)
	}
}

// TestS3LitestreamKeyFormsPlainFirst: when both the plain layout and a
// Litestream key form hold levels, the plain layout is the store.
func TestS3LitestreamKeyFormsPlainFirst(t *testing.T) {
	srv, opts := startLiteralS3(t, "bkt")
	srv.put("app/0009/"+ltxName(1, 9), []byte("plain"))
	srv.put("/app/0009/"+ltxName(1, 3), []byte("slash"))
	ctx := context.Background()
	st, err := store.Open(ctx, "s3://bkt/app", opts)
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.ListAfter(ctx, store.SnapshotLevel, 0)
	if err != nil || len(got) != 1 || got[0].MaxTXID != 9 {
		t.Fatalf("snapshots: %v, %v", got, err)
	}
}
