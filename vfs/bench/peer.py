# The child process of the benchmark's peer column (peer_test.go embeds this
# file and runs it with Debian's /usr/bin/python3, whose sqlite3 module can
# load extensions). A VFS written in Go (walrust.so, litestream-vfs.so) brings
# its own Go runtime and heap, so it is measured in a process of its own: its
# peak RSS is then that VFS's, and its runtime never shares an address space
# with the benchmark's (two Go runtimes do not mix in one process).
#
# One JSON job on stdin; one line "PEER-RESULT {json}" on stdout at the end.
# Jobs:
#   reads: the read rows' queries through the extension's VFS (ext_uri) and
#          through SQLite's default VFS on a local copy (native_uri), samples
#          interleaved as in the Go side (A B, B A, ...): medians per case.
#   cold:  open ext_uri and time the first query (SELECT max(id) FROM t).
#   idle:  open conns connections to ext_uri, run one query on each, print
#          "PEER-READY", then hold them until stdin closes (the parent counts
#          store requests meanwhile).
import json
import random
import sqlite3
import statistics
import sys
import time

LOOKUP = "SELECT v FROM t WHERE id = ?"
RANGE = "SELECT count(*), sum(length(v)) FROM t WHERE id BETWEEN ? AND ?"
SCAN = "SELECT count(*), sum(length(v)) FROM t"


def status_kib(name):
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k == name:
                return int(v.split()[0])
    return 0


def load(ext):
    # The extension registers its VFS process-wide; the loading connection
    # is not used afterwards.
    if not ext:
        return
    c = sqlite3.connect(":memory:")
    c.enable_load_extension(True)
    c.load_extension(ext)
    c.close()


def connect(uri):
    # isolation_level=None: every query is its own (autocommit) transaction,
    # as with database/sql on the Go side.
    return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)


def sample(case, conn, i, rows, range_rows):
    kind, n = case["kind"], case["n"]
    if kind == "lookup":
        rng = random.Random(1000003 * 1 + i)  # the same keys on both sides
        for _ in range(n):
            if conn.execute(LOOKUP, (1 + rng.randrange(rows),)).fetchone() is None:
                raise RuntimeError("lookup: no row")
    elif kind == "range":
        rng = random.Random(1000003 * 2 + i)
        for _ in range(n):
            lo = 1 + rng.randrange(max(1, rows - range_rows))
            cnt, _ = conn.execute(RANGE, (lo, lo + range_rows - 1)).fetchone()
            if cnt != min(range_rows, rows - lo + 1):
                raise RuntimeError("range at %d: %d rows" % (lo, cnt))
    elif kind == "scan":
        cnt, _ = conn.execute(SCAN).fetchone()
        if cnt != rows:
            raise RuntimeError("scan: %d rows, want %d" % (cnt, rows))
    else:
        raise RuntimeError("unknown case kind " + kind)


def timed(case, uri, held, i, rows, range_rows):
    start = time.perf_counter()
    if case["warm"]:
        sample(case, held, i, rows, range_rows)
    else:
        c = connect(uri)
        sample(case, c, i, rows, range_rows)
        c.close()
    return time.perf_counter() - start


def reads(job):
    rows, range_rows = job["rows"], job["range_rows"]
    ext_uri, native_uri = job["ext_uri"], job["native_uri"]
    ext, nat = connect(ext_uri), connect(native_uri)
    # Both read the same rows, and the OS page cache holds the file.
    for c in (ext, nat):
        if c.execute("SELECT count(*) FROM t").fetchone()[0] != rows:
            raise RuntimeError("row count differs")
    out = []
    for case in job["cases"]:
        a, b = [], []
        for i in range(case["pairs"]):
            first, second = (ext_uri, ext, a), (native_uri, nat, b)
            if i % 2:
                first, second = second, first
            for uri, held, acc in (first, second):
                acc.append(timed(case, uri, held, i, rows, range_rows))
        out.append({"ext": statistics.median(a), "native": statistics.median(b)})
    ext.close()
    nat.close()
    return {"cases": out}


def main():
    job = json.loads(sys.argv[1])  # stdin is the idle job's stop signal
    start_rss = status_kib("VmRSS")
    load(job.get("ext"))
    res = {"start_rss_kib": start_rss, "sqlite": sqlite3.sqlite_version}
    kind = job["job"]
    if kind == "reads":
        res.update(reads(job))
    elif kind == "cold":
        start = time.perf_counter()
        c = connect(job["ext_uri"])
        mx = c.execute("SELECT max(id) FROM t").fetchone()[0]
        res["seconds"] = time.perf_counter() - start
        if not mx:
            raise RuntimeError("first query: no rows")
        c.close()
    elif kind == "idle":
        # conns connections to one database, each of which has read once.
        cs = [connect(job["ext_uri"]) for _ in range(job.get("conns", 1))]
        for c in cs:
            c.execute("SELECT count(*) FROM t").fetchone()
        print("PEER-READY", flush=True)
        sys.stdin.read()  # until the parent closes it
        for c in cs:
            c.close()
    else:
        raise RuntimeError("unknown job " + kind)
    res["vm_hwm_kib"] = status_kib("VmHWM")
    print("PEER-RESULT " + json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
