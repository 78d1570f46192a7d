package bench

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// The peer column: the Litestream v0.5.18 VFS (build/litestream-vfs.so, which
// `make bench` builds), measured in the same run as walrust. It is slow to
// build (minutes), so only runs that name it with -peer have the column:
// make bench does, the smoke run under `go test` (make test) does not.
var peerFlag = flag.String("peer", "", "path of the Litestream VFS extension (litestream-vfs.so): adds the peer column")

// peerScript is the child's code. Both Go VFSes are loaded into Debian's
// python3 (whose sqlite3 module can load extensions), each in a process of
// its own, so that each one's peak RSS is its own and its Go runtime never
// shares a process with another one.
//
//go:embed peer.py
var peerScript []byte

const (
	peerPython = "/usr/bin/python3"
	peerResult = "PEER-RESULT "
	peerReady  = "PEER-READY"
)

func (b *bench) peerOn() bool { return *peerFlag != "" }

// peerCase is one read case, as the child runs it.
type peerCase struct {
	Kind  string `json:"kind"` // lookup | range | scan
	N     int    `json:"n"`    // queries per sample (lookups, ranges)
	Warm  bool   `json:"warm"`
	Pairs int    `json:"pairs"`
}

type peerJob struct {
	Job       string     `json:"job"` // reads | cold | idle
	Ext       string     `json:"ext,omitempty"`
	ExtURI    string     `json:"ext_uri"`
	NativeURI string     `json:"native_uri,omitempty"`
	Rows      int64      `json:"rows,omitempty"`
	RangeRows int64      `json:"range_rows,omitempty"`
	Cases     []peerCase `json:"cases,omitempty"`
	Conns     int        `json:"conns,omitempty"` // idle
}

type peerOut struct {
	Cases []struct {
		Ext    float64 `json:"ext"`    // median seconds per sample through the extension's VFS
		Native float64 `json:"native"` // the same through the default VFS, same child
	} `json:"cases"`
	Seconds  float64 `json:"seconds"`
	HWMKiB   int64   `json:"vm_hwm_kib"`
	StartKiB int64   `json:"start_rss_kib"`
	SQLite   string  `json:"sqlite"` // the child's SQLite version
}

// A peer child is either walrust's extension or Litestream's.
type peerVFS struct {
	name string // for messages
	ext  string // the extension's path, "" for none (the default VFS only)
	env  []string
}

// walrustPeer loads build/walrust.so.
func (b *bench) walrustPeer() peerVFS {
	return peerVFS{name: "walrust (python3)", ext: testtool.Extension(b.t) + ".so", env: os.Environ()}
}

// litestreamPeer loads the Litestream VFS, its replica at replicaURL (set
// in LITESTREAM_REPLICA_URL, which is how it is configured), its log in
// logDir. It refuses to start with AWS_CA_BUNDLE set (its S3 client is given
// a plain *http.Client), so that is unset for its process only.
func (b *bench) litestreamPeer(replicaURL, logDir string) peerVFS {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_CA_BUNDLE=") && !strings.HasPrefix(kv, "LITESTREAM_") {
			env = append(env, kv)
		}
	}
	env = append(env, "LITESTREAM_REPLICA_URL="+replicaURL,
		"LITESTREAM_LOG_FILE="+filepath.Join(logDir, "litestream-vfs.log")) // its log would go to stdout
	ext, err := filepath.Abs(*peerFlag)
	if err != nil {
		b.t.Fatal(err)
	}
	return peerVFS{name: "Litestream VFS", ext: ext, env: env}
}

// peerCmd is the child for one job.
func (b *bench) peerCmd(v peerVFS, job peerJob) *exec.Cmd {
	t := b.t
	t.Helper()
	if _, err := os.Stat(peerPython); err != nil {
		testtool.Missing(t, peerPython)
	}
	if v.ext != "" {
		if _, err := os.Stat(v.ext); err != nil {
			testtool.Missing(t, v.ext+" (make bench builds it)")
		}
	}
	script := filepath.Join(b.dir, "peer.py")
	if _, err := os.Stat(script); err != nil {
		if err := os.WriteFile(script, peerScript, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	job.Ext = v.ext
	js, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(peerPython, script, string(js))
	cmd.Env = v.env
	return cmd
}

// runPeer runs one job to its end.
func (b *bench) runPeer(v peerVFS, job peerJob) peerOut {
	t := b.t
	t.Helper()
	cmd := b.peerCmd(v, job)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("peer %s, %s: %v\n%s\n%s", v.name, job.Job, err, stdout, stderr.String())
	}
	return parsePeer(b, v, job, string(stdout), stderr.String())
}

func parsePeer(b *bench, v peerVFS, job peerJob, stdout, stderr string) peerOut {
	b.t.Helper()
	for _, line := range strings.Split(stdout, "\n") {
		if js, ok := strings.CutPrefix(line, peerResult); ok {
			var out peerOut
			if err := json.Unmarshal([]byte(js), &out); err != nil {
				b.t.Fatalf("peer %s, %s: %v", v.name, job.Job, err)
			}
			b.peerSQLite = out.SQLite
			return out
		}
	}
	b.t.Fatalf("peer %s, %s printed no result:\n%s\n%s", v.name, job.Job, stdout, stderr)
	return peerOut{}
}

// peerIdle starts an idle child: it opens conns connections to uri, reads
// once on each and holds them; stop ends it and returns its result.
func (b *bench) peerIdle(v peerVFS, uri string, conns int) (stop func() peerOut) {
	t := b.t
	t.Helper()
	job := peerJob{Job: "idle", ExtURI: uri, Conns: conns}
	cmd := b.peerCmd(v, job)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewReader(stdout)
	ready := make(chan error, 1)
	go func() {
		for {
			l, err := lines.ReadString('\n')
			if strings.TrimSpace(l) == peerReady {
				ready <- nil
				return
			}
			if err != nil {
				ready <- err
				return
			}
		}
	}()
	select {
	case err := <-ready:
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("peer %s, idle: %v\n%s", v.name, err, stderr.String())
		}
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("peer %s, idle: not ready after 2 minutes\n%s", v.name, stderr.String())
	}
	return func() peerOut {
		stdin.Close()
		rest, _ := io.ReadAll(lines)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("peer %s, idle: %v\n%s", v.name, err, stderr.String())
		}
		return parsePeer(b, v, job, string(rest), stderr.String())
	}
}

// fmtPeerRatio is how the peer column shows a time against a baseline.
func fmtPeerRatio(x, base float64) string {
	r := x / base
	if r >= 10 {
		return fmt.Sprintf("%.0f×", r)
	}
	return fmt.Sprintf("%.2f×", r)
}
