package bench

import (
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/publish"
)

// testDB is one generated database and its LTX snapshot (TXID 1).
type testDB struct {
	mb       int
	path     string // the SQLite file (rollback journal)
	snap     string // its snapshot, written the way Litestream writes them (LZ4 pages, no database checksums)
	snapSize int64
	pages    uint32
	rows     int64
}

type data struct {
	dbs map[int]*testDB
	gen time.Duration
}

func (d *data) db(mb int) *testDB { return d.dbs[mb] }

// snapName is the name of a snapshot at TXID 1.
var snapName = ltx.FormatFilename(1, 1)

// prepare generates the databases the selected scenarios need.
func (b *bench) prepare() *data {
	start := time.Now()
	d := &data{dbs: map[int]*testDB{}}
	var sizes []int
	if b.want("reads") {
		sizes = append(sizes, b.cfg.readMB)
	}
	if b.want("bootstrap") {
		sizes = append(sizes, b.cfg.bootMB...)
	}
	if b.want("apply") {
		sizes = append(sizes, b.cfg.bootMB[0])
	}
	slices.Sort(sizes)
	for _, mb := range slices.Compact(sizes) {
		d.dbs[mb] = b.makeDB(mb)
	}
	d.gen = time.Since(start)
	return d
}

// lorem is the compressible half of every row.
const lorem = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam"

// makeDB writes a database of at least mb MiB: table t (id INTEGER PRIMARY
// KEY, k TEXT, v TEXT) with rows of about 220 bytes (120 random hex
// characters and 80 of text), 4 KiB pages, and its snapshot.
func makeDB(t testing.TB, parent string, mb int) *testDB {
	t.Helper()
	dir := filepath.Join(parent, fmt.Sprintf("db%d", mb))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d := &testDB{mb: mb, path: filepath.Join(dir, "primary.db"), snap: filepath.Join(dir, snapName)}
	db, err := sql.Open("sqlite3", "file:"+d.path+"?_journal_mode=OFF&_synchronous=OFF")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec("PRAGMA page_size=4096")
	exec("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT NOT NULL, v TEXT NOT NULL)")
	insert := func(n int64) {
		t.Helper()
		exec(`INSERT INTO t (id, k, v)
			WITH RECURSIVE c(x) AS (SELECT ?1 UNION ALL SELECT x+1 FROM c WHERE x < ?2)
			SELECT x, printf('key-%09d', x), hex(randomblob(60)) || substr(?3, 1 + x % 61, 80) FROM c`,
			d.rows+1, d.rows+n, lorem)
		d.rows += n
	}
	target := int64(mb) << 20
	insert(target / 240) // a little under the target; then top up
	for {
		var pages int64
		if err := db.QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
			t.Fatal(err)
		}
		if pages*4096 >= target {
			d.pages = uint32(pages)
			break
		}
		insert(max(100, (target-pages*4096)/240))
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	img, f, err := publish.OpenImage(d.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out, err := os.Create(d.snap)
	if err != nil {
		t.Fatal(err)
	}
	st, err := publish.WriteSnapshot(out, img, 1, time.Now(), &publish.EncodeOptions{NoChecksum: true, SpillDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	d.snapSize = st.Size
	return d
}

func (b *bench) makeDB(mb int) *testDB {
	start := time.Now()
	d := makeDB(b.t, b.dir, mb)
	b.logf("generated a %d MiB database (%d rows, %d pages) and its %.1f MiB snapshot in %s",
		mb, d.rows, d.pages, float64(d.snapSize)/(1<<20), time.Since(start).Round(time.Millisecond))
	return d
}

// describe says what the data was, under the table.
func (d *data) describe(cfg config) string {
	var s strings.Builder
	var mbs []int
	for mb := range d.dbs {
		mbs = append(mbs, mb)
	}
	slices.Sort(mbs)
	for _, mb := range mbs {
		x := d.dbs[mb]
		fmt.Fprintf(&s, "- %d MiB database: table t(id INTEGER PRIMARY KEY, k TEXT, v TEXT), %d rows of ~220 bytes, %d pages of 4 KiB; its LTX snapshot is %.1f MiB (LZ4, no database checksums, as Litestream writes them).\n",
			mb, x.rows, x.pages, float64(x.snapSize)/(1<<20))
	}
	fmt.Fprintf(&s, "- Data generated in %s (not part of any measurement).\n", d.gen.Round(time.Second))
	fmt.Fprintf(&s, "\nHow each row is measured (ratio = walrust ÷ baseline; each pair interleaved A B, B A, ...; \"pairs p25–p75\" is the spread of the per-pair ratios):\n\n")
	for _, n := range []string{
		fmt.Sprintf("reads: the %d MiB database, bootstrapped into a walrust replica from a file store, against SQLite's default unix VFS on two copies of the primary it was made from: a WAL-mode copy (header bytes 18/19 = 2, opened read-write so SQLite makes its `-wal` and `-shm`: what `litestream restore` gives and what the primary is; a WAL reader starts a transaction from shared memory) and a rollback-mode copy (bytes 18/19 = 1, `mode=ro`: what walrust serves). All three through mattn/go-sqlite3 with its default page cache (`cache_size=-2000`, 2 MB, %.1f%% of the database), the same prepared statements and the same random keys, samples interleaved three ways (A B C, C B A, ...). The OS page cache holds every file (each is read once first): the comparison is of the VFS, not of the disk. Warm: one connection held throughout, SQLite's cache kept between samples; cold: a new connection per sample, its open timed too. Median time per sample; the target is the WAL-mode copy's.", cfg.readMB, 2/float64(cfg.readMB)*100),
		fmt.Sprintf("reads with versions unfolded: a read transaction stays open on another connection while the replica applies %d one-page LTX files (each rewrites the unused gap of a b-tree page, so all sides read the same rows); walrust reads through those versions, the default VFS reads the copies.", cfg.unfolded),
		fmt.Sprintf("Litestream v0.5.18 VFS (with `-peer`, which make bench passes): `build/litestream-vfs.so`, built from the module as its Makefile does, configured by `LITESTREAM_REPLICA_URL` with its defaults (page cache 10 MB, poll_interval 1 s unless said), `AWS_CA_BUNDLE` unset for its process. It runs in a child process of Debian's `/usr/bin/python3` (its sqlite3 module and SQLite, named on the Machine line), so that its Go runtime and memory are its own. Read rows: it follows the same file store as walrust's replica; every sample is interleaved with one of the default VFS on the WAL-mode copy in the same child, and the ratio is between those two (%d samples each, %d for the aggregates); \"walrust\" in that cell is the same measurement of walrust.so in a child of its own (its own replica of the same store). Memory: VmHWM of those children after all the read cases, and of a third that runs them with the default VFS only. Cold start: a child opens the bootstrap rows' snapshot on the same versitygw and times open → `SELECT max(id)`. Idle: a child with 1 or 8 connections to the idle rows' database, `poll_interval` set to their interval; requests counted in versitygw's log over %d intervals (its polls cannot be observed from outside).", cfg.peerPairs, cfg.peerScanPairs, cfg.idlePolls),
		fmt.Sprintf("lag: %d replicas (intervals %v, each with and without a long read transaction) follow one versitygw prefix through the VFS; for each sample a row is inserted on a primary, its LTX file PUT with walrust's S3 client after a random delay (random phase against every poll timer), and the clock starts when the PUT returns; a reader per replica runs `SELECT max(id)` every millisecond. Ideal poller = 0.99 × interval + the median LIST+GET of that file timed against the same server in the same run.", 2*len(cfg.lagIntervals), cfg.lagIntervals),
		"bootstrap: each measurement is a child process (so VmHWM is that job's peak RSS), started after a sync(2) so that no earlier writeback competes with it: time from `sql.Open` of a replica that does not exist yet to its first query's answer (S3 client setup, listing, one GET, decode, verify, write, fsync, install). Baseline: one GET of the same object with the same S3 client, `io.Copy` to a local file, fsync (client made and object listed before the clock starts); to `io.Discard` for reference. Medians.",
		fmt.Sprintf("apply: a follower (file store, interval 10 ms) bootstrapped from the %d MiB snapshot; %d LTX files of %d changed pages appear at once (one rename); time until the state file names the last TXID (applied, folded into the base file, durable); \"visible\" is when the head reached it. Baseline: the same %d page images pwritten into a copy of the database, with an fsync after each file's pages.", cfg.bootMB[0], cfg.applyFiles, cfg.applyPages, cfg.applyFiles*cfg.applyPages),
		fmt.Sprintf("idle: a caught-up replica at interval %s; polls counted from distinct `last_poll` values of `PRAGMA walrust_status` (sampled every 2 ms), requests from versitygw's own request log over exactly those polls.", cfg.idleInterval),
		fmt.Sprintf("idle back-off: two replicas on one versitygw, each on its own prefix, one at a fixed interval %s and one with max_interval %s; LIST requests counted from the server's log over the same %s, after the back-off has reached its maximum.", cfg.backoffInterval, cfg.backoffMax, cfg.backoffWindow),
		fmt.Sprintf("publish: `walrust publish --interval %[1]s` against `litestream replicate` (v0.5.18, sync-interval %[1]s, file replica), each a child process on its own copy of the same WAL-mode database (%[2]v MB: table t(id INTEGER PRIMARY KEY, body TEXT) of 1,000-byte rows), one after the other in the same run, both to a local file store. After both have published their first snapshot (startup is not counted): %[3]s of 10 single-row updates a second, then, at %[4]d MB, %[5]s of 1,000 single-row inserts a second, each its own transaction (synchronous=NORMAL, the application's default autocheckpoint). CPU: the sum of every thread's schedstat; bytes written: /proc/<pid>/io write_bytes; bytes read: rchar; latency: from each commit returning to a level-0 file holding its row (a marker in the row) appearing in the store, polled every 5 ms.", cfg.pubInterval, cfg.pubMB, cfg.pubUpdateFor, cfg.pubBurstMB, cfg.pubBurstFor),
		fmt.Sprintf("fleet: one process (this one) opens %v replicas through the VFS, each of its own file store (a snapshot of a 2-page database), at interval %s, and holds one connection to each; live heap (HeapAlloc right after a GC) and goroutines (less database/sql's one per `*sql.DB`) are counted before the opens and once all are bootstrapped; store requests per poll from each replica's own status over two intervals. Baseline: the smallest fleet's cost per replica.", cfg.fleetSizes, cfg.fleetInterval),
	} {
		fmt.Fprintf(&s, "- %s\n", n)
	}
	return s.String()
}

// link hard-links src to dst (making dst's directory), or copies it when
// they are on different file systems.
func link(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
