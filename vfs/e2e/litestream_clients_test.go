package e2e

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// The clients the Litestream tests read replicas through: the sqlite3
// shell, Debian's python3, Go in this process and walrust-shell.

// lsClient is one way users read a walrust replica.
type lsClient interface {
	name() string
	// query runs a one-column query and returns its values as text.
	query(q string) ([]string, error)
	stop()
}

// replicaURI is the URI every client opens its replica by.
func replicaURI(path string, tg lsTarget) string {
	return fmt.Sprintf("file:%s?vfs=walrust&source=%s&interval=100ms%s", path, tg.source, tg.uriParams)
}

// goClient is Go in this process: mattn/go-sqlite3 with the VFS registered
// by vfs.Register (TestMain).
type goClient struct{ db *sql.DB }

func startGoClient(t *testing.T, path string, tg lsTarget) lsClient {
	db, err := sql.Open("sqlite3", replicaURI(path, tg))
	if err != nil {
		t.Fatal(err)
	}
	c := &goClient{db: db}
	t.Cleanup(c.stop)
	return c
}

func (c *goClient) name() string                     { return "go" }
func (c *goClient) query(q string) ([]string, error) { return queryLines(c.db, q) }
func (c *goClient) stop()                            { c.db.Close() }

// endMark is the line an interactive client prints after each result.
const endMark = "--walrust-end--"

// procClient is a long-running interpreter (the sqlite3 shell, python3)
// that reads one query per line on stdin and answers with the result's
// lines and then endMark.
type procClient struct {
	label  string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr testtool.Buffer
	wrap   func(q string) string                // what to send for one query
	parse  func(out []string) ([]string, error) // nil: the lines are the values
	done   chan struct{}
	once   sync.Once
}

func startProc(t *testing.T, label string, cmd *exec.Cmd, wrap func(string) string, preamble string) *procClient {
	t.Helper()
	c := &procClient{label: label, cmd: cmd, wrap: wrap, lines: make(chan string, 1024), done: make(chan struct{})}
	cmd.Stderr = &c.stderr
	cmd.Env = childEnv()
	setDeathSignal(cmd)
	stdin, stdout := testtool.StartPiped(t, cmd)
	c.stdin = stdin
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 64<<20) // rows with large values are long lines
		for sc.Scan() {
			c.lines <- strings.TrimRight(sc.Text(), "\r")
		}
		close(c.lines)
	}()
	go func() {
		_ = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		c.stop()
		if t.Failed() {
			t.Logf("%s stderr:\n%s", label, tail(c.stderr.String(), 3000))
		}
	})
	if preamble != "" {
		if _, err := io.WriteString(stdin, preamble); err != nil {
			t.Fatalf("%s: %v", label, err)
		}
	}
	return c
}

func (c *procClient) name() string { return c.label }

func (c *procClient) query(q string) ([]string, error) {
	if _, err := io.WriteString(c.stdin, c.wrap(q)); err != nil {
		return nil, fmt.Errorf("%s: write: %v; stderr: %s", c.label, err, tail(c.stderr.String(), 500))
	}
	var out []string
	timeout := time.NewTimer(60 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				return nil, fmt.Errorf("%s exited; stderr: %s", c.label, tail(c.stderr.String(), 500))
			}
			if l == endMark {
				if c.parse != nil {
					var err error
					if out, err = c.parse(out); err != nil {
						return nil, fmt.Errorf("%s: %v; stderr: %s", c.label, err, tail(c.stderr.String(), 300))
					}
				}
				if len(out) == 0 {
					// The sqlite3 shell reports a failed query on stderr only.
					return nil, fmt.Errorf("%s: no rows; stderr: %s", c.label, tail(c.stderr.String(), 300))
				}
				if strings.HasPrefix(out[0], "ERR ") {
					return nil, fmt.Errorf("%s: %s", c.label, out[0])
				}
				return out, nil
			}
			out = append(out, l)
		case <-timeout.C:
			return nil, fmt.Errorf("%s: no answer within 60s; stderr: %s", c.label, tail(c.stderr.String(), 500))
		}
	}
}

// stop ends the interpreter by closing its stdin, as a user would, and
// kills it if it does not exit.
func (c *procClient) stop() {
	c.once.Do(func() {
		c.stdin.Close()
		select {
		case <-c.done:
		case <-time.After(15 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	})
}

// startShellClient runs the sqlite3 shell: .load the extension, .open the
// replica by URI.
func startShellClient(t *testing.T, path string, tg lsTarget) lsClient {
	ext := testtool.Extension(t)
	sqlite3 := testtool.Program(t, "sqlite3")
	stdbuf := testtool.Program(t, "stdbuf")
	cmd := exec.Command(stdbuf, "-oL", sqlite3, "-batch", "-noheader")
	wrap := func(q string) string { return q + ";\nSELECT '" + endMark + "';\n" }
	return startProc(t, "sqlite3", cmd, wrap, fmt.Sprintf(".load %s\n.open '%s'\n", ext, replicaURI(path, tg)))
}

// pythonClient is the script Debian's python3 runs: load the extension on
// one connection, open the replica by URI on another, answer queries.
const pythonClient = `
import sqlite3, sys
ext, uri, end = sys.argv[1], sys.argv[2], sys.argv[3]
loader = sqlite3.connect(":memory:")
loader.enable_load_extension(True)
loader.load_extension(ext)
db = sqlite3.connect(uri, uri=True)
for q in sys.stdin:
    try:
        for row in db.execute(q):
            print(row[0])
    except Exception as e:
        print("ERR " + str(e).replace("\n", " "))
    print(end, flush=True)
`

func startPythonClient(t *testing.T, path string, tg lsTarget) lsClient {
	ext := testtool.Extension(t)
	python := testtool.Program(t, "/usr/bin/python3")
	cmd := exec.Command(python, "-c", pythonClient, ext, replicaURI(path, tg), endMark)
	return startProc(t, "python3", cmd, func(q string) string { return q + "\n" }, "")
}

// startWalrustShellClient runs build/walrust-shell reading statements from
// stdin (not a terminal), which prints each result as a table and flushes it.
func startWalrustShellClient(t *testing.T, path string, tg lsTarget) lsClient {
	bin := testtool.Built(t, "walrust-shell")
	cmd := exec.Command(bin, append([]string{tg.source, "--local", path, "--interval", "100ms"}, tg.shellFlags...)...)
	wrap := func(q string) string { return q + ";\nSELECT '" + endMark + "' AS end_mark;\n" }
	c := startProc(t, "walrust-shell", cmd, wrap, "")
	c.parse = parseShellTable
	return c
}

// parseShellTable takes the values out of walrust-shell's tables for a
// one-column query followed by the end_mark query: the column name, a rule
// of dashes, the values; then "end_mark" and its rule (the end mark itself
// has been taken off). A failed query prints nothing on stdout.
func parseShellTable(out []string) ([]string, error) {
	if len(out) < 2 || out[len(out)-2] != "end_mark" || strings.Trim(out[len(out)-1], "-") != "" {
		return nil, fmt.Errorf("unexpected output %q", tail(strings.Join(out, "\n"), 300))
	}
	out = out[:len(out)-2]
	if len(out) == 0 {
		return nil, errors.New("no rows")
	}
	if len(out) < 2 || strings.Trim(out[1], "-") != "" {
		return nil, fmt.Errorf("unexpected output %q", tail(strings.Join(out, "\n"), 300))
	}
	for i, l := range out[2:] {
		out[2+i] = strings.TrimSpace(l)
	}
	return out[2:], nil
}

// walrustShellOnce is walrust-shell as a one-shot command: each query is
// `walrust-shell SOURCE --local PATH -c SQL`. A run answers from the local
// replica as it is when the query runs (it does not wait for its follower
// to catch up), so it converges only as fast as runs make progress.
type walrustShellOnce struct {
	bin, path string
	tg        lsTarget
}

func newWalrustShellOnce(t *testing.T, path string, tg lsTarget) lsClient {
	return &walrustShellOnce{bin: testtool.Built(t, "walrust-shell"), path: path, tg: tg}
}

func (c *walrustShellOnce) name() string { return "walrust-shell -c" }
func (c *walrustShellOnce) stop()        {}

func (c *walrustShellOnce) query(q string) ([]string, error) {
	bin, path, tg := c.bin, c.path, c.tg
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{tg.source, "--local", path}, tg.shellFlags...)
	cmd := exec.CommandContext(ctx, bin, append(args, "-c", q)...)
	cmd.Env = childEnv()
	setDeathSignal(cmd)
	var stderr testtool.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("walrust-shell -c: %v; stderr: %s", err, tail(stderr.String(), 500))
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) < 2 || strings.Trim(lines[1], "-") != "" {
		return nil, fmt.Errorf("walrust-shell -c: unexpected output %q", tail(string(out), 300))
	}
	return lines[2:], nil
}

// converge waits until every client's content hash equals the primary's.
// The writer must be stopped; Litestream may still be uploading, and its
// own bookkeeping (_litestream_seq) may still change the primary, so the
// primary is hashed again in every round.
func converge(t *testing.T, p *lsPrimary, clients []lsClient, what string) string {
	t.Helper()
	start := time.Now()
	var want string
	testtool.EventuallyEvery(t, what+": the clients to converge to the primary", 60*time.Second, 100*time.Millisecond, func() error {
		p.alive()
		q, err := dumpQuery(p.db)
		if err != nil {
			t.Fatalf("%s: primary schema: %v", what, err)
		}
		lines, err := queryLines(p.db, q)
		if err != nil {
			t.Fatalf("%s: primary dump: %v", what, err)
		}
		want = hashLines(lines)
		all := true
		var b strings.Builder
		for _, c := range clients {
			state := "ok"
			if got, err := c.query(q); err != nil {
				state = err.Error()
			} else if h := hashLines(got); h != want {
				state = "hash " + h + ", want " + want
			}
			all = all && state == "ok"
			fmt.Fprintf(&b, "\n  %s: %s", c.name(), state)
		}
		if !all {
			return errors.New(b.String())
		}
		return nil
	})
	t.Logf("%s: %d clients converged to %s in %s", what, len(clients), want, time.Since(start).Round(time.Millisecond))
	return want
}

// clientInt runs a one-value query through a client.
func clientInt(c lsClient, q string) (int64, error) {
	lines, err := c.query(q)
	if err != nil {
		return 0, err
	}
	if len(lines) != 1 {
		return 0, fmt.Errorf("%s: %s: %d lines", c.name(), q, len(lines))
	}
	var n int64
	if _, err := fmt.Sscan(strings.TrimSpace(lines[0]), &n); err != nil {
		return 0, fmt.Errorf("%s: %s: %q", c.name(), q, lines[0])
	}
	return n, nil
}

// storeLevels lists every level of the store through walrust's own store
// package.
func storeLevels(t *testing.T, tg lsTarget) map[int][]store.FileInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, tg.source, tg.storeOpts)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	levels := map[int][]store.FileInfo{}
	for level := 0; level <= store.SnapshotLevel; level++ {
		files, err := st.ListAfter(ctx, level, 0)
		if err != nil {
			t.Fatalf("list store: %v", err)
		}
		if len(files) > 0 {
			levels[level] = files
		}
	}
	return levels
}

func describeLevels(levels map[int][]store.FileInfo) string {
	var b strings.Builder
	for level := 0; level <= store.SnapshotLevel; level++ {
		files := levels[level]
		if len(files) == 0 {
			continue
		}
		fmt.Fprintf(&b, " L%d: %d files %s..%s;", level, len(files), files[0].MinTXID, files[len(files)-1].MaxTXID)
	}
	return b.String()
}

// waitStore waits until cond holds for the store's listing.
func waitStore(t *testing.T, p *lsPrimary, tg lsTarget, what string, cond func(map[int][]store.FileInfo) bool) map[int][]store.FileInfo {
	t.Helper()
	var levels map[int][]store.FileInfo
	testtool.EventuallyEvery(t, "the store to show "+what, 60*time.Second, 100*time.Millisecond, func() error {
		p.alive()
		if levels = storeLevels(t, tg); !cond(levels) {
			return fmt.Errorf("the store holds%s", describeLevels(levels))
		}
		return nil
	})
	return levels
}

func randomText(rnd *rand.Rand, n int) string {
	b := make([]byte, n/2+1)
	for i := range b {
		b[i] = byte(rnd.Uint32())
	}
	return hex.EncodeToString(b)[:n]
}

func randomBlob(rnd *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rnd.Uint32())
	}
	return b
}
