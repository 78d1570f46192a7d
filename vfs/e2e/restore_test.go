package e2e

// End-to-end: walrust restore at past points of a store that a real
// Litestream v0.5.18 wrote, with compaction and L0 retention short enough
// that the early TXIDs are left only in compactions and snapshots. Every
// restore must equal litestream restore at the same point (-txid,
// -timestamp), and the database the primary held then.

import (
	"bytes"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/s3test"
	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// rowText is row k's content: transaction k inserts row k and nothing
// else, so the database after transaction n is rows 1..n, exactly.
func rowText(k int64) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "row %d", k))
	return strings.Repeat(hex.EncodeToString(sum[:]), 3)
}

// commitLog is when each of the writer's transactions committed.
type commitLog struct {
	mu sync.Mutex
	at []time.Time // at[k-1]: transaction k
}

func (c *commitLog) n() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.at)
}

// writeRows commits transactions 1, 2, ... (one row each), pause apart,
// until stop is closed.
func writeRows(db *sql.DB, pause time.Duration, log *commitLog, stop <-chan struct{}) <-chan error {
	done := make(chan error, 1)
	go func() {
		for k := int64(1); ; k++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if _, err := db.Exec("INSERT INTO t (id, k, v) VALUES (?, ?, ?)", k, k, rowText(k)); err != nil {
				done <- fmt.Errorf("transaction %d: %w", k, err)
				return
			}
			log.mu.Lock()
			log.at = append(log.at, time.Now())
			log.mu.Unlock()
			time.Sleep(pause)
		}
	}()
	return done
}

// rowsHeld checks that path holds rows 1..n of the writer and nothing else
// (what the primary held between transactions n and n+1), and returns n.
func rowsHeld(t *testing.T, path, what string) int64 {
	t.Helper()
	return rowsHeldURI(t, "file:"+path+"?mode=ro", what)
}

// rowsHeldURI is rowsHeld of the database a URI opens.
func rowsHeldURI(t *testing.T, uri, what string) int64 {
	t.Helper()
	db, err := sql.Open("sqlite3", uri)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ok string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("%s: integrity_check %q, %v", what, ok, err)
	}
	rows, err := db.Query("SELECT id, k, v FROM t ORDER BY id")
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	defer rows.Close()
	var n int64
	for rows.Next() {
		var id, k int64
		var v string
		if err := rows.Scan(&id, &k, &v); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if n++; id != n || k != n || v != rowText(n) {
			t.Fatalf("%s: row %d is (%d, %d, %.16s...), not the writer's row %d", what, n, id, k, v, n)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return n
}

func TestRestoreLitestreamFile(t *testing.T) {
	dir := t.TempDir()
	storeDir := filepath.Join(dir, "store")
	if err := os.MkdirAll(storeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	restoreLitestream(t, dir, lsTarget{replicaYAML: fmt.Sprintf("      type: file\n      path: %s\n", storeDir), source: "file://" + storeDir}, "file://"+storeDir)
}

// TestRestoreLitestreamS3: on S3 the objects' LastModified is not the
// header's time, which Litestream reads back from each object's metadata
// for a -timestamp restore and walrust from the header.
func TestRestoreLitestreamS3(t *testing.T) {
	srv := s3test.Start(t, "walrust")
	srv.Env(t) // the S3 credentials, for this process and its children
	restoreLitestream(t, t.TempDir(), s3Target(srv), srv.URL("walrust", "app")+"?endpoint="+srv.Endpoint+"&region="+s3test.Region+"&forcePathStyle=true")
}

// restoreLitestream runs the test against one target; lsURL is the store
// as litestream restore names it.
func restoreLitestream(t *testing.T, dir string, tg lsTarget, lsURL string) {
	start := time.Now()
	walrustBin := testtool.Built(t, "walrust")
	p := startPrimary(t, dir, tg)

	// A transaction a little slower than Litestream's sync interval
	// (100ms), so that most TXIDs hold one transaction, until the early
	// TXIDs are left only in compactions: L0 files deleted, and an L1
	// file whose last TXID has no L0 file any more.
	var commits commitLog
	stop := make(chan struct{})
	done := writeRows(p.db, 120*time.Millisecond, &commits, stop)
	levels := waitStore(t, p, tg, "TXIDs only compactions reach, an L2 compaction and a snapshot", func(l map[int][]store.FileInfo) bool {
		return len(compactionOnly(l)) >= 3 && len(l[2]) > 0 && len(l[store.SnapshotLevel]) > 0
	})
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// A clean stop syncs what is pending; the store then stays as it is
	// for both restores.
	p.stopLitestream(syscall.SIGTERM)
	levels = storeLevels(t, tg)
	t.Logf("%d transactions; store:%s", commits.n(), describeLevels(levels))

	restore := func(name string, args ...string) (string, error) {
		out := filepath.Join(dir, fmt.Sprintf("%s-%d.db", name, time.Now().UnixNano()))
		var cmd *exec.Cmd
		if name == "walrust" {
			cmd = exec.Command(walrustBin, append(append([]string{"restore", tg.source, "-o", out}, tg.shellFlags...), args...)...)
			cmd.Env = childEnv()
		} else {
			cmd = exec.Command(p.bin, append(append([]string{"restore", "-o", out}, args...), lsURL)...)
			cmd.Env = litestreamEnv()
		}
		msg, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("%s restore %s: %v\n%s", name, strings.Join(args, " "), err, msg)
		}
		return out, nil
	}
	// same restores a point with both and checks that they agree: both
	// fail, or both hold the same rows 1..n, the same database file.
	// An as_of view of the same point, through the VFS, beside a live
	// replica that is never made.
	live := filepath.Join(dir, "live.db")
	same := func(what, asOf string, walrustArgs, lsArgs []string) (n int64, ok bool) {
		t.Helper()
		w, werr := restore("walrust", walrustArgs...)
		l, lerr := restore("litestream", lsArgs...)
		if (werr == nil) != (lerr == nil) {
			t.Fatalf("%s: walrust and litestream disagree:\n%v\n%v", what, werr, lerr)
		}
		if werr != nil {
			t.Logf("%s: neither can restore it:\n%v\n%v", what, werr, lerr)
			return 0, false
		}
		n = rowsHeld(t, w, "walrust, "+what)
		if ln := rowsHeld(t, l, "litestream, "+what); ln != n {
			t.Fatalf("%s: walrust restored rows 1..%d, litestream 1..%d", what, n, ln)
		}
		view := "file:" + live + "?vfs=walrust&source=" + tg.source + tg.uriParams + "&as_of=" + url.QueryEscape(asOf)
		if vn := rowsHeldURI(t, view, "as_of view, "+what); vn != n {
			t.Fatalf("%s: the as_of view holds rows 1..%d, the restores 1..%d", what, vn, n)
		}
		wb, _ := os.ReadFile(w)
		lb, _ := os.ReadFile(l)
		if !bytes.Equal(wb, lb) {
			t.Fatalf("%s: walrust's file (%d bytes) differs from litestream's (%d bytes)", what, len(wb), len(lb))
		}
		return n, true
	}

	// Ten TXIDs the store lists as the end of some file, the TXIDs that
	// only compactions reach first.
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 18))
	only := compactionOnly(levels)
	var ends []ltx.TXID
	for _, files := range levels {
		for _, f := range files {
			if !slices.Contains(ends, f.MaxTXID) && !slices.Contains(only, f.MaxTXID) {
				ends = append(ends, f.MaxTXID)
			}
		}
	}
	rnd.Shuffle(len(only), func(i, j int) { only[i], only[j] = only[j], only[i] })
	rnd.Shuffle(len(ends), func(i, j int) { ends[i], ends[j] = ends[j], ends[i] })
	picked := append(only[:min(4, len(only))], ends...)
	held := map[ltx.TXID]int64{}
	compacted := 0
	for _, txid := range picked {
		if len(held) == 10 {
			break
		}
		n, ok := same(fmt.Sprintf("TXID %d", uint64(txid)), fmt.Sprint(uint64(txid)), []string{"--txid", fmt.Sprint(uint64(txid))}, []string{"-txid", txid.String()})
		if !ok {
			continue
		}
		held[txid] = n
		if slices.Contains(only, txid) {
			compacted++
		}
	}
	if len(held) < 10 || compacted == 0 {
		t.Fatalf("restored %d TXIDs (%d only compactions reach) of %v; want 10, some through compactions only", len(held), compacted, picked)
	}
	// A later TXID holds more transactions, never fewer.
	txids := slices.Sorted(func(yield func(ltx.TXID) bool) {
		for k := range held {
			if !yield(k) {
				return
			}
		}
	})
	for i := 1; i < len(txids); i++ {
		if held[txids[i]] < held[txids[i-1]] {
			t.Fatalf("TXID %d holds rows 1..%d, the earlier TXID %d rows 1..%d", txids[i], held[txids[i]], txids[i-1], held[txids[i-1]])
		}
	}
	var b strings.Builder
	for _, txid := range txids {
		fmt.Fprintf(&b, " %d (rows 1..%d)", uint64(txid), held[txid])
	}
	t.Logf("TXIDs restored:%s", b.String())

	// Three times, each halfway between two commits, after the oldest file
	// a restore can start from was stored (a second later: S3's
	// LastModified may be rounded down to the second): what was restored
	// was committed before the time.
	commits.mu.Lock()
	at := slices.Clone(commits.at)
	commits.mu.Unlock()
	// And before the newest file's listed time: Litestream takes a time
	// past it for one it holds nothing of ("timestamp does not exist"),
	// and S3 may round that down to the second too.
	oldest, newest := oldestBase(levels), newestModTime(levels)
	var first int
	for first < len(at)-1 && !at[first].After(oldest.Add(1200*time.Millisecond)) {
		first++
	}
	last := len(at) - 1 // at[last] is the first commit at or past newest
	for last > first && !at[last-1].Before(newest) {
		last--
	}
	if last-first < 4 {
		t.Fatalf("only %d commits after the oldest base (%s) and before the newest file (%s)", last-first, oldest, newest)
	}
	times := 0
	for range 10 {
		if times == 3 {
			break
		}
		k := first + rnd.IntN(last-first-1)
		ts := at[k].Add(at[k+1].Sub(at[k]) / 2).UTC()
		s := ts.Format(time.RFC3339Nano)
		n, ok := same("time "+s, s, []string{"--time", s}, []string{"-timestamp", s})
		if !ok {
			continue
		}
		if n > 0 && !at[n-1].Before(ts) {
			t.Fatalf("as of %s: rows 1..%d, but transaction %d committed at %s", s, n, n, at[n-1].UTC().Format(time.RFC3339Nano))
		}
		times++
		t.Logf("as of %s (between transactions %d and %d): rows 1..%d", s, k+1, k+2, n)
	}
	if times < 3 {
		t.Fatalf("restored %d times; want 3", times)
	}
	t.Logf("took %s", time.Since(start).Round(time.Millisecond))
}

// compactionOnly are the TXIDs that end a file of levels 1-8 and no L0
// file: only compactions reach them.
func compactionOnly(levels map[int][]store.FileInfo) []ltx.TXID {
	var out []ltx.TXID
	for level := 1; level < store.SnapshotLevel; level++ {
		for _, f := range levels[level] {
			if !slices.ContainsFunc(levels[0], func(l0 store.FileInfo) bool { return l0.MaxTXID == f.MaxTXID }) && !slices.Contains(out, f.MaxTXID) {
				out = append(out, f.MaxTXID)
			}
		}
	}
	return out
}

// oldestBase is when the oldest file a restore can start from (a
// snapshot, or a file from TXID 1) was stored: its header's time on a
// file replica (Litestream sets the mtime to it), its upload on S3.
// newestModTime is the time the store lists for its newest file.
func newestModTime(levels map[int][]store.FileInfo) time.Time {
	var newest time.Time
	for _, files := range levels {
		for _, f := range files {
			if f.ModTime.After(newest) {
				newest = f.ModTime
			}
		}
	}
	return newest
}

func oldestBase(levels map[int][]store.FileInfo) time.Time {
	var oldest time.Time
	for _, files := range levels {
		for _, f := range files {
			if f.MinTXID == 1 && (oldest.IsZero() || f.ModTime.Before(oldest)) {
				oldest = f.ModTime
			}
		}
	}
	return oldest
}
