package e2e

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/walrust/walrust/vfs/internal/testhooks"
)

// TestS3ClientsShared: replicas of one S3 server followed by one process
// share one S3 client (one connection pool, one credential lookup).
func TestS3ClientsShared(t *testing.T) {
	w := newS3World(t, true)
	before := testhooks.S3Clients()
	for i := range 3 {
		db := openDB(t, fmt.Sprintf("file:%s?vfs=walrust&source=%s&endpoint=%s&interval=50ms",
			filepath.Join(w.dir, fmt.Sprintf("replica-%d.db", i)), "s3://"+s3Bucket+"/"+s3Prefix, w.srv.Endpoint))
		var n int
		if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	if got := testhooks.S3Clients() - before; got != 1 {
		t.Fatalf("3 replicas on one S3 server made %d clients; want 1", got)
	}
}
