package bench

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/walrust/walrust/vfs/testkit/s3test"
)

// litestreamS3 is the Litestream VFS following prefix on the test's
// versitygw (credentials and region come from the environment that
// srv.Env set, as for walrust).
func (b *bench) litestreamS3(srv *s3test.Server, bucket, prefix string) peerVFS {
	dir, err := os.MkdirTemp(b.dir, "litestream-")
	if err != nil {
		b.t.Fatal(err)
	}
	u := fmt.Sprintf("s3://%s/%s?endpoint=%s&forcePathStyle=true", bucket, prefix, url.QueryEscape(srv.Endpoint))
	return b.litestreamPeer(u, dir)
}

// peerCold is the Litestream VFS's cold start on the snapshot at prefix:
// the time from opening the database to the first query's answer, in a
// python3 child (the clock starts after the extension is loaded, as the
// walrust child's starts at sql.Open), and that child's peak RSS.
func (b *bench) peerCold(srv *s3test.Server, bucket, prefix string) peerOut {
	v := b.litestreamS3(srv, bucket, prefix)
	return b.runPeer(v, peerJob{Job: "cold", ExtURI: "file:" + filepath.Join(b.dir, "cold-"+prefix+".db") + "?vfs=litestream"})
}

// peerIdleCell counts the requests a caught-up Litestream VFS makes at the
// server while conns connections to one database stay open, over polls poll
// intervals, after its first polls have passed. Its polls cannot be seen
// from outside, so the count is per interval of time.
func (b *bench) peerIdleCell(srv *s3test.Server, bucket, prefix string, iv time.Duration, polls, conns int) string {
	v := b.litestreamS3(srv, bucket, prefix)
	stop := b.peerIdle(v, fmt.Sprintf("file:%s?vfs=litestream&poll_interval=%s",
		filepath.Join(b.dir, fmt.Sprintf("idle-%d.db", conns)), iv), conns)
	time.Sleep(3 * iv)
	r0 := srv.Requests()
	window := time.Duration(polls) * iv
	time.Sleep(window)
	r1 := srv.Requests()
	out := stop()
	reqs := r1[len(r0):]
	kinds := map[string]int{}
	for _, r := range reqs {
		kinds[r.Kind]++
	}
	var list []string
	for _, k := range []string{"LIST", "GET", "HEAD", "PUT", "POST", "DELETE", "OTHER"} {
		if kinds[k] > 0 {
			list = append(list, fmt.Sprintf("%d %s", kinds[k], k))
		}
	}
	if len(list) == 0 {
		list = []string{"none"}
	}
	per := float64(len(reqs)) / float64(polls)
	b.logf("idle, peer: Litestream VFS, %d connection(s): %d requests in %s (%s); peak RSS %d MiB",
		conns, len(reqs), window, strings.Join(list, ", "), out.HWMKiB>>10)
	return fmt.Sprintf("%.2f per poll_interval %s (server log: %s in %s)", per, iv, strings.Join(list, ", "), window)
}
