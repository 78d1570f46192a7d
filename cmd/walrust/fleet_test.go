package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/ltxtest"
	"github.com/walrust/walrust/vfs/testkit/s3test"
	"github.com/walrust/walrust/vfs/testkit/testtool"
	"github.com/walrust/walrust/vfs/testkit/worldtest"
)

// fleetDB is one primary of the fleet test: a reference database, the
// LTX files it publishes into a store, and the replica that follows it.
type fleetDB struct {
	ref   *worldtest.RefDB
	pub   *ltxtest.Primary
	local string
}

func newFleetDB(t *testing.T, st store.Store, local string) *fleetDB {
	t.Helper()
	d := &fleetDB{ref: worldtest.NewRefDB(t, filepath.Join(t.TempDir(), "primary.db"), 4096), pub: &ltxtest.Primary{Store: st, PageSize: 4096}, local: local}
	d.ref.Insert(3)
	d.pub.Advance(d.ref.Image(), 1)
	d.pub.Snapshot(t)
	return d
}

func (d *fleetDB) commit(t *testing.T) {
	t.Helper()
	d.ref.Insert(2)
	d.pub.Commit(t, d.ref.Image())
}

// converged waits until the replica holds the primary's TXID, and
// compares their content.
func (d *fleetDB) converged(t *testing.T, p *proc) {
	t.Helper()
	waitFolded(t, p, d.local, d.pub.TXID)
	rdb, err := sql.Open("sqlite3", "file:"+d.local+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if a, b := testtool.ContentHash(t, d.ref.DB), testtool.ContentHash(t, rdb); a != b {
		t.Fatalf("%s: content differs from its primary's", d.local)
	}
}

func openFleetStore(t *testing.T, url string, opts store.Options) store.Store {
	t.Helper()
	opts.Create = true
	st, err := store.Open(context.Background(), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestReplicateConfig: one walrust replicate --config follows 60
// databases (30 file entries, 20 found by discover, 5 of them after the
// start, 10 on S3, the numbers), one of them stuck on a corrupt file while the others
// advance; SIGHUP adds one entry and removes another; /metrics lists every
// replica.
func TestReplicateConfig(t *testing.T) {
	srv := s3test.Start(t, "bkt")
	srv.Env(t)
	env, _ := s3Args(srv)
	dir := t.TempDir()
	stores, local := filepath.Join(dir, "stores"), filepath.Join(dir, "replicas")
	os.MkdirAll(local, 0o755)

	var dbs []*fleetDB
	var entries []string
	for i := range 30 {
		src := fmt.Sprintf("file://%s/f%02d", stores, i)
		dbs = append(dbs, newFleetDB(t, openFleetStore(t, src, store.Options{}), filepath.Join(local, fmt.Sprintf("f%02d.db", i))))
		entries = append(entries, fmt.Sprintf("  - source: %s\n    local: replicas/f%02d.db\n", src, i))
	}
	for i := range 10 {
		src := srv.URL("bkt", fmt.Sprintf("s%02d", i))
		dbs = append(dbs, newFleetDB(t, openFleetStore(t, src, srv.Options()), filepath.Join(local, fmt.Sprintf("s%02d.db", i))))
		entries = append(entries, fmt.Sprintf("  - source: %s\n    local: replicas/s%02d.db\n    endpoint: %s\n    region: us-east-1\n    path-style: true\n", src, i, srv.Endpoint))
	}
	tenants := filepath.Join(stores, "tenants")
	discovered := func(i int) *fleetDB {
		return newFleetDB(t, openFleetStore(t, fmt.Sprintf("file://%s/t%02d", tenants, i), store.Options{}), filepath.Join(dir, "tenants", fmt.Sprintf("t%02d.db", i)))
	}
	for i := range 15 {
		dbs = append(dbs, discovered(i))
	}
	entries = append(entries, fmt.Sprintf("  - discover: file://%s\n    local-dir: tenants\n", tenants))
	// A broken entry: its store does not exist.
	entries = append(entries, fmt.Sprintf("  - source: file://%s/missing\n    local: replicas/missing.db\n", stores))

	config := filepath.Join(dir, "walrust.yml")
	write := func(entries []string) {
		head := "interval: 100ms\ndiscover-every: 300ms\nmetrics-addr: 127.0.0.1:0\nreplicas:\n"
		if err := os.WriteFile(config, []byte(head+strings.Join(entries, "")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(entries)
	start := time.Now()
	p := startWalrust(t, env, "replicate", "--config", config)
	for _, d := range dbs {
		d.converged(t, p)
	}
	t.Logf("%d replicas bootstrapped in %s", len(dbs), time.Since(start).Round(time.Millisecond))

	// A corrupt file in one store: that replica keeps its last good state.
	bad := dbs[0]
	badFile := store.FileInfo{Level: 0, MinTXID: bad.pub.TXID + 1, MaxTXID: bad.pub.TXID + 1}
	ltxtest.Put(t, bad.pub.Store, 0, append(ltxtest.Encode(t, bad.pub.Image, bad.pub.Image, 4096, badFile.MinTXID, badFile.MaxTXID, bad.pub.Checksum, false, time.Now())[:200], make([]byte, 100)...))
	for i := range 5 { // created after the start
		dbs = append(dbs, discovered(15+i))
	}
	for _, d := range dbs[1:] {
		d.commit(t)
	}
	for _, d := range dbs[1:] {
		d.converged(t, p)
	}
	p.waitFor(&p.stderr, regexp.QuoteMeta(bad.local)+`: Rejected L0/`)
	if got := replicaTXID(t, bad.local); got != bad.pub.TXID {
		t.Fatalf("%s holds TXID %d after a corrupt file, want %d", bad.local, got, bad.pub.TXID)
	}

	// /metrics names every replica.
	m := regexp.MustCompile(`Serving metrics on (http://\S+)/metrics`).FindStringSubmatch(p.stdout.String())
	if m == nil {
		t.Fatalf("no metrics address:\n%s", p)
	}
	resp, err := http.Get(m[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// /metrics parses, and its TXIDs are the replicas' own (the corrupt
	// entry's last good one included).
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	txids := map[string]float64{}
	if fam := families["walrust_replica_txid"]; fam != nil {
		for _, m := range fam.Metric {
			for _, l := range m.GetLabel() {
				if l.GetName() == "db" {
					txids[l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
	}
	for _, d := range dbs {
		if got, ok := txids[d.local]; !ok || got != float64(d.pub.TXID) {
			t.Errorf("/metrics: walrust_replica_txid{db=%q} = %v (listed %v); want %d", d.local, got, ok, d.pub.TXID)
		}
	}

	// /healthz names the broken entry, and says why.
	p.waitFor(&p.stderr, `missing\.db: Error: .*does not exist`)
	resp, err = http.Get(m[1] + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !regexp.MustCompile(`missing\.db","txid":0,[^}]*"last_error":"[^"]*does not exist`).Match(body) {
		t.Errorf("/healthz: %d %s", resp.StatusCode, body)
	}

	// SIGHUP: one entry removed (f01), one added.
	removed := dbs[1]
	added := newFleetDB(t, openFleetStore(t, "file://"+stores+"/added", store.Options{}), filepath.Join(local, "added.db"))
	write(append(append([]string{entries[0]}, entries[2:]...), fmt.Sprintf("  - source: file://%s/added\n    local: %s\n", stores, added.local)))
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitFor(&p.stdout, `Reloaded .*: 1 started, 1 stopped`)
	p.waitFor(&p.stdout, regexp.QuoteMeta(removed.local)+`: Stopped at TXID \d+`)
	added.converged(t, p)
	removed.commit(t)
	dbs[2].commit(t)
	dbs[2].converged(t, p)
	time.Sleep(300 * time.Millisecond)
	if got := replicaTXID(t, removed.local); got == removed.pub.TXID {
		t.Fatalf("%s still followed after its entry was removed", removed.local)
	}

	if code := p.stop(os.Interrupt); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p)
	}
	t.Logf("took %s", time.Since(start).Round(time.Millisecond))
}

// TestReplicateConfigErrors: a config file is checked whole, and every
// error names its line.
func TestReplicateConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ text, want string }{
		{"replicas:\n  - source: file:///x\n    local: a.db\n    sorce: y\n", `:4: unknown key "sorce"`},
		{"intervall: 1s\nreplicas: []\n", `:1: unknown key "intervall"`},
		{"replicas:\n  - source: ftp://x\n    local: a.db\n", `:2: source "ftp://x": unknown scheme`},
		{"replicas:\n  - source: file:///x\n", `:2: source file:///x: no local:`},
		{"replicas:\n  - source: file:///x\n    local: a.db\n  - source: file:///y\n    local: ./a.db\n", `:4: .*a.db is the local file of the entry at line 2 too`},
		{"interval: soon\nreplicas: []\n", `:1: "soon" is not a duration`},
		{"replicas:\n  - discover: file:///x\n", `:2: discover file:///x: no local-dir:`},
		{"max-interval: 2s\nreplicas:\n  - source: file:///x\n    local: a.db\n", `:3: max-interval 2s: must be longer than interval 5s`},
	} {
		path := filepath.Join(dir, "w.yml")
		os.WriteFile(path, []byte(c.text), 0o644)
		_, stderr, code := walrust(t, "replicate", "--config", path)
		if code == 0 || !regexp.MustCompile(regexp.QuoteMeta(path)+c.want).MatchString(stderr) {
			t.Errorf("%q: exit %d, %q; want %q", c.text, code, stderr, c.want)
		}
	}
	if _, stderr, code := walrust(t, "replicate", "--config", "w.yml", "--interval", "1s"); code != 2 || !strings.Contains(stderr, "put --interval in the file") {
		t.Errorf("--config with --interval: exit %d, %q", code, stderr)
	}
}

// TestReplicateConfigJSONLogs: with --config, --log-format json makes every
// line of the fleet and of its members one JSON object, each member's
// naming its replica in db.
func TestReplicateConfigJSONLogs(t *testing.T) {
	dir := t.TempDir()
	var entries []string
	var dbs []*fleetDB
	for i := range 3 {
		src := fmt.Sprintf("file://%s/s%d", dir, i)
		dbs = append(dbs, newFleetDB(t, openFleetStore(t, src, store.Options{}), filepath.Join(dir, fmt.Sprintf("r%d.db", i))))
		entries = append(entries, fmt.Sprintf("  - source: %s\n    local: r%d.db\n", src, i))
	}
	config := filepath.Join(dir, "walrust.yml")
	if err := os.WriteFile(config, []byte("interval: 50ms\nreplicas:\n"+strings.Join(entries, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startWalrust(t, nil, "replicate", "--config", config, "--log-format", "json")
	for _, d := range dbs {
		d.commit(t)
		d.converged(t, p)
	}
	if code := p.stop(syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p)
	}
	seen := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(p.stdout.String()), "\n") {
		var line struct {
			Msg string `json:"msg"`
			DB  string `json:"db"`
		}
		if err := json.Unmarshal([]byte(l), &line); err != nil || line.Msg == "" {
			t.Fatalf("not a JSON line: %q (%v)", l, err)
		}
		seen[line.DB] = true
	}
	for _, d := range dbs {
		if !seen[d.local] {
			t.Errorf("no line names %s:\n%s", d.local, p.stdout.String())
		}
	}
}
