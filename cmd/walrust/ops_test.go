package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/testkit/s3test"
	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// TestReplicateMetricsAndHealth: walrust replicate --metrics-addr serves
// Prometheus text that parses, with the replica's TXID; /healthz answers
// 200 while the replica is confirmed current within --max-lag and 503 once
// its store is gone for longer, and 200 again when the store is back; the
// exec probe `walrust status --local` exits 0, 1 and 0 with it. The store
// goes away as a file store's directory does, and as an S3 server that
// stops (versitygw, stopped and restarted).
func TestReplicateMetricsAndHealth(t *testing.T) {
	t.Run("file store", func(t *testing.T) {
		storeDir := filepath.Join(t.TempDir(), "store")
		testMetricsAndHealth(t, "file://"+storeDir, nil, nil, func(up bool) {
			from, to := storeDir, storeDir+".away"
			if up {
				from, to = to, from
			}
			if err := os.Rename(from, to); err != nil {
				t.Fatal(err)
			}
		})
	})
	t.Run("S3 server", func(t *testing.T) {
		srv := s3test.Start(t, "bucket")
		env, flags := s3Args(srv)
		testMetricsAndHealth(t, "s3://bucket/app", env, flags, func(up bool) {
			if up {
				srv.Restart()
			} else {
				srv.Stop()
			}
		})
	})
}

func testMetricsAndHealth(t *testing.T, url string, env, flags []string, storeUp func(bool)) {
	path, db := newDB(t, "wal")
	addContent(t, db, 20)
	publish := func() ltx.TXID {
		t.Helper()
		out, errOut, code := walrustEnv(t, env, append([]string{"publish", path, url}, flags...)...)
		m := regexp.MustCompile(` TXID (\d+)`).FindStringSubmatch(out)
		if code != 0 || m == nil {
			t.Fatalf("publish: exit %d\n%s%s", code, out, errOut)
		}
		n, _ := strconv.ParseUint(m[1], 10, 64)
		return ltx.TXID(n)
	}
	publish()
	mustExec(t, db, "INSERT INTO t (body) VALUES ('two')")
	txid := publish()
	replica := filepath.Join(t.TempDir(), "replica.db")
	p := startWalrust(t, env, append([]string{"replicate", url, "--local", replica, "--interval", "50ms",
		"--metrics-addr", "127.0.0.1:0", "--max-lag", "1s"}, flags...)...)
	p.waitFor(&p.stdout, `Polling for updates`)
	m := regexp.MustCompile(`Serving metrics on (http://[^/]+)/metrics`).FindStringSubmatch(p.stdout.String())
	if m == nil {
		t.Fatalf("no metrics address:\n%s", p)
	}
	base := m[1]
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}

	code, body := get("/metrics")
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if code != http.StatusOK || err != nil {
		t.Fatalf("/metrics: %d, %v:\n%s", code, err, body)
	}
	fam := families["walrust_replica_txid"]
	if fam == nil || len(fam.Metric) != 1 || fam.Metric[0].GetGauge().GetValue() != float64(txid) {
		t.Fatalf("walrust_replica_txid = %v; want %d", fam, txid)
	}
	if lbl := fam.Metric[0].GetLabel(); len(lbl) != 1 || lbl[0].GetName() != "db" || lbl[0].GetValue() != replica {
		t.Fatalf("walrust_replica_txid labels %v; want db=%s", lbl, replica)
	}
	for _, name := range []string{"walrust_replica_lag_seconds", "walrust_replica_polls_total", "walrust_store_requests_total", "go_goroutines"} {
		if families[name] == nil {
			t.Errorf("no %s in /metrics", name)
		}
	}

	probe := func() int {
		t.Helper()
		out, err := exec.Command(binary, "status", "--local", replica, "--max-lag", "1s").CombinedOutput()
		var exit *exec.ExitError
		switch {
		case err == nil:
			return 0
		case errors.As(err, &exit):
			return exit.ExitCode()
		}
		t.Fatalf("walrust status --local: %v\n%s", err, out)
		return -1
	}
	healthIs := func(want int, probeWant int) {
		t.Helper()
		testtool.Eventually(t, fmt.Sprintf("/healthz %d, status --local exit %d", want, probeWant), 15*time.Second, func() error {
			code, body := get("/healthz")
			var h struct{ Status string }
			if err := json.Unmarshal([]byte(body), &h); err != nil {
				return fmt.Errorf("/healthz body %q: %v", body, err)
			}
			if code != want || (want == 200) != (h.Status == "ok") {
				return fmt.Errorf("/healthz %d %s", code, body)
			}
			if c := probe(); c != probeWant {
				return fmt.Errorf("status --local exited %d", c)
			}
			return nil
		})
	}
	healthIs(200, 0)

	// The store goes away: polls fail, the replica is no longer confirmed
	// current, and after max-lag both checks say stale.
	storeUp(false)
	healthIs(503, 1)
	storeUp(true)
	healthIs(200, 0)
	if code := p.stop(syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p)
	}
}

// TestMetricsAddrCheckedFirst: a metrics address that cannot be taken ends
// the run at start, before any bootstrap.
func TestMetricsAddrCheckedFirst(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	primary, _ := newDB(t, "wal")
	dir := t.TempDir()
	mustRun(t, "publish", primary, "file://"+dir)
	replica := filepath.Join(t.TempDir(), "replica.db")
	_, stderr, code := walrust(t, "replicate", "file://"+dir, "--local", replica, "--metrics-addr", ln.Addr().String())
	if code != 1 || !strings.Contains(stderr, "--metrics-addr "+ln.Addr().String()) || !strings.Contains(stderr, "address already in use") {
		t.Fatalf("exit %d, stderr %q; want exit 1 naming the busy --metrics-addr", code, stderr)
	}
	if _, err := os.Stat(replica); err == nil {
		t.Errorf("the run bootstrapped the replica before it checked the metrics address")
	}
}
