// The C layer: registered under the name "walrust" in place of the VFS that
// psanford/sqlite3vfs makes (whose every call enters Go), it forwards to
// that VFS, but for two things it does itself.
//
// Direct reads. At a read transaction's SHARED lock the Go side says once
// how its version's pages can be read from the base file (the descriptor,
// how far, a bitmap of the pages that are in versions not folded yet, and
// whether page 1 on disk is the version's as served), and the layer then
// serves the transaction's page reads with pread(2) itself, without a
// C-to-Go call per page. Usually nothing waits to be folded and every page
// is read so, page 1 too. Why the base file's pages cannot change under
// the transaction is told at replica.Version.Direct.
//
// The calls SQLite makes around each read transaction are answered here
// too: the hot-journal check (xAccess on -journal: a replica never has
// one, which is all Go answers), xCheckReservedLock (no connection ever
// writes a replica), and xFileSize (the pinned version's size).
//
// Gated transactions. While nothing has changed since the last
// transaction — the replica's newest version is the one its base file
// holds — the replica keeps its gate open (replica.Gate): the SHARED lock
// pins the version there with one atomic compare-and-swap, every page is
// read directly, and the unlock unpins it, so a transaction never enters
// Go. When a new version is published the gate closes, and the next
// transaction calls in (and reopens it once the version is folded).
//
// The fork guard. Go's runtime does not survive fork(): in the child only
// the forking thread exists, so the goroutines that follow replicas are
// gone, and a call into Go can block forever on state another thread held
// at the fork. Pre-fork servers (gunicorn --preload, uwsgi without
// lazy-apps, a Python program that forks workers) load the extension, fork,
// and would then stall silently, or read a replica that never advances. In a
// forked child the layer answers every call itself, with an error and one
// line on stderr, and never enters Go.
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "_cgo_export.h"
#include "layer.h"

// SQLite's result codes and lock levels (sqlite3.h).
enum {
  rcOK = 0,
  rcCantOpen = 14,
  rcNotFound = 12,
  rcIOErr = 10,
  rcIOErrRead = 10 | (1 << 8),
  rcIOErrWrite = 10 | (3 << 8),
  rcIOErrFsync = 10 | (4 << 8),
  rcIOErrTruncate = 10 | (6 << 8),
  rcIOErrFstat = 10 | (7 << 8),
  rcIOErrDelete = 10 | (10 << 8),
  rcIOErrAccess = 10 | (13 << 8),
  rcIOErrCheckReservedLock = 10 | (14 << 8),
  rcIOErrLock = 10 | (15 << 8),
  lockNone = 0,
  lockShared = 1,
  openMainDB = 0x100,
};

// Set by the child handler of pthread_atfork, before fork() returns in the
// child; never in the parent. The handler stays registered, so grandchildren
// are covered too.
static volatile int forked;
static volatile int warned;

static wl_vfs *inner; // sqlite3vfs's VFS
static wl_vfs *dflt;  // the default VFS: time, sleep and randomness
static wl_vfs layer;
static wl_io_methods layerIO;
static uint64_t directReads;
static uint64_t gatedTxns;
static int gatesOff;

static const char forkedMsg[] =
    "walrust: this process was forked after it loaded the walrust extension; "
    "the Go runtime that follows replicas does not survive fork(), so walrust "
    "databases cannot be used here. Load the extension and open databases in "
    "each worker after it starts (for example gunicorn without --preload).";

// refuse answers a call made in a forked child: rc, and the reason on
// stderr once.
static int refuse(int rc) {
  if (!warned) {
    warned = 1;
    fprintf(stderr, "%s\n", forkedMsg);
  }
  return rc;
}

// A layer file is the layer's own fields, then sqlite3vfs's file, whose
// first field after SQLite's header is its Go file id. The int64_t in
// wl_direct makes the size a multiple of 8, so the inner file is aligned.
typedef struct layerFile {
  wl_file base;
  int main;         // the main database file, not a temporary one
  int lock;         // the lock SQLite holds, as last granted
  wl_direct direct; // valid while direct.fd >= 0: set at SHARED, cleared at unlock
} layerFile;

#define LF(f) ((layerFile *)(f))
#define INNER(f) ((wl_file *)((char *)(f) + sizeof(layerFile)))
#define IO(f) (INNER(f)->pMethods)
#define INNER_ID(f) (*(uint64_t *)((char *)INNER(f) + sizeof(wl_file)))

// Pin masks of wl_gate.word (replica/gate.go).
#define GATE_OPEN ((uint64_t)1 << 31)
#define GATE_PINS (GATE_OPEN - 1)

// enterGate begins a read transaction at the file's gate, if it is open:
// pins the opening and points the direct reads at its version. 0: the
// transaction begins in Go.
static int enterGate(layerFile *lf) {
  wl_gate *g = lf->direct.gate;
  if (g == NULL || __atomic_load_n(&gatesOff, __ATOMIC_RELAXED)) {
    return 0;
  }
  int32_t i = __atomic_load_n(&g->current, __ATOMIC_ACQUIRE);
  if (i < 0 || i >= WL_GATE_SLOTS) {
    return 0;
  }
  wl_gate_slot *s = &g->slots[i];
  // A CAS from an open word: it fails if the slot closed, or opened on
  // another version, since the load (see replica/gate.go).
  uint64_t w = __atomic_load_n(&s->word, __ATOMIC_RELAXED);
  do {
    if (!(w & GATE_OPEN) || (w & GATE_PINS) == GATE_PINS) {
      return 0;
    }
  } while (!__atomic_compare_exchange_n(&s->word, &w, w + 1, 1, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
  // The pin keeps the slot from opening again, so its fields stay as the
  // replica wrote them before it opened.
  wl_direct *d = &lf->direct;
  d->pageSize = s->pageSize;
  d->size = s->size;
  d->limit = s->limit;
  d->bits = s->bits;
  d->pages = s->pages;
  d->page1 = s->page1;
  d->gated = 1 + i;
  d->adopted = 0;
  d->fd = s->fd;
  __atomic_add_fetch(&gatedTxns, 1, __ATOMIC_RELAXED);
  return 1;
}

// gateSlot is the slot a gated transaction pinned.
static wl_gate_slot *gateSlot(const wl_direct *d) { return &d->gate->slots[d->gated - 1]; }

// leaveGate ends a gated transaction: no direct read after it, then the
// unpin (after which a fold may rewrite the file).
static void leaveGate(layerFile *lf) {
  wl_gate_slot *s = gateSlot(&lf->direct);
  lf->direct.fd = -1;
  lf->direct.gated = 0;
  __atomic_sub_fetch(&s->word, 1, __ATOMIC_SEQ_CST);
}

static int layerClose(wl_file *f) {
  if (forked) {
    return rcOK; // the Go side of the file is the parent's to close
  }
  layerFile *lf = LF(f);
  if (lf->direct.gated) {
    leaveGate(lf); // before Go's close, which may free the gate with the replica
  }
  lf->direct.fd = -1;
  return IO(f)->xClose(INNER(f));
}

// readDirect reads amt bytes at off from the base file. A read that ends
// past the file's end is filled with zeros, as Go's read of a page the base
// file does not hold yet (the tail of a growing file).
static int readDirect(layerFile *lf, void *buf, int amt, int64_t off) {
  char *p = buf;
  int done = 0;
  while (done < amt) {
    ssize_t n = pread(lf->direct.fd, p + done, (size_t)(amt - done), off + done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return rcIOErrRead;
    }
    if (n == 0) {
      memset(p + done, 0, (size_t)(amt - done));
      break;
    }
    done += (int)n;
  }
  __atomic_add_fetch(&directReads, 1, __ATOMIC_RELAXED);
  return rcOK;
}

// inBase says whether the base file holds the pages a read covers as of
// the transaction's version: past page 1, within the limit, and none of
// them in a version not folded yet (its bit set; the bits are written by Go
// with atomic operations).
static int inBase(const wl_direct *d, int amt, int64_t off) {
  if (d->fd < 0 || (off < d->pageSize && d->page1 != 1) || off + amt > d->limit) {
    return 0;
  }
  if (d->bits == NULL) {
    return 1;
  }
  uint64_t last = (uint64_t)(off + amt - 1) / (uint64_t)d->pageSize + 1;
  for (uint64_t pgno = (uint64_t)off / (uint64_t)d->pageSize + 1; pgno <= last; pgno++) {
    if (pgno < d->pages && (__atomic_load_n(&d->bits[pgno / 64], __ATOMIC_ACQUIRE) >> (pgno % 64)) & 1) {
      return 0;
    }
  }
  return 1;
}

static int layerRead(wl_file *f, void *buf, int amt, int64_t off) {
  if (forked) {
    return refuse(rcIOErrRead);
  }
  layerFile *lf = LF(f);
  // Page 1 of a gated transaction's version may be in the gate's buffer.
  int fromGate = lf->direct.fd >= 0 && lf->direct.page1 == 2 && off + amt <= lf->direct.pageSize;
  if (fromGate || inBase(&lf->direct, amt, off)) {
    // Counted in before the revoked flag is read, and Go sets the flag
    // before it waits for the count to drain (both sequentially
    // consistent): either Go sees this read and waits for it, or this
    // read sees the flag and goes through Go. A gated transaction is
    // revoked with its gate's opening, the others one by one.
    int32_t *inflight = lf->direct.gated ? &gateSlot(&lf->direct)->inflight : &lf->direct.inflight;
    int32_t *revoked = lf->direct.gated ? &gateSlot(&lf->direct)->revoked : &lf->direct.revoked;
    __atomic_add_fetch(inflight, 1, __ATOMIC_SEQ_CST);
    if (!__atomic_load_n(revoked, __ATOMIC_SEQ_CST)) {
      int rc = rcOK;
      if (fromGate) {
        memcpy(buf, lf->direct.gate->page1[lf->direct.gated - 1] + off, (size_t)amt);
        __atomic_add_fetch(&directReads, 1, __ATOMIC_RELAXED);
      } else {
        rc = readDirect(lf, buf, amt, off);
      }
      __atomic_sub_fetch(inflight, 1, __ATOMIC_RELEASE);
      return rc;
    }
    __atomic_sub_fetch(inflight, 1, __ATOMIC_RELEASE);
  }
  return IO(f)->xRead(INNER(f), buf, amt, off);
}

void walrustRevoke(wl_direct *d) {
  __atomic_store_n(&d->revoked, 1, __ATOMIC_SEQ_CST);
  while (__atomic_load_n(&d->inflight, __ATOMIC_SEQ_CST) != 0) {
    sched_yield(); // a pread of a page or two
  }
}

static int layerWrite(wl_file *f, const void *buf, int amt, int64_t off) {
  if (forked) {
    return refuse(rcIOErrWrite);
  }
  return IO(f)->xWrite(INNER(f), buf, amt, off);
}

static int layerTruncate(wl_file *f, int64_t size) {
  if (forked) {
    return refuse(rcIOErrTruncate);
  }
  return IO(f)->xTruncate(INNER(f), size);
}

static int layerSync(wl_file *f, int flags) {
  if (forked) {
    return refuse(rcIOErrFsync);
  }
  return IO(f)->xSync(INNER(f), flags);
}

static int layerFileSize(wl_file *f, int64_t *size) {
  if (forked) {
    return refuse(rcIOErrFstat);
  }
  // In a transaction the size is its pinned version's, which never
  // changes (Go answers the same, expired or not).
  if (LF(f)->direct.fd >= 0) {
    *size = LF(f)->direct.size;
    return rcOK;
  }
  return IO(f)->xFileSize(INNER(f), size);
}

// layerLock: a SHARED lock begins a read transaction at the gate when it
// is open; else Go's pins a version and, when the transaction can read the
// base file directly, fills the file's wl_direct in the same call.
static int layerLock(wl_file *f, int lock) {
  if (forked) {
    return refuse(rcIOErrLock);
  }
  layerFile *lf = LF(f);
  if (lock == lockShared && (lf->lock != lockNone || enterGate(lf))) {
    lf->lock = lockShared > lf->lock ? lockShared : lf->lock;
    return rcOK; // held already, or now at the gate
  }
  int rc = IO(f)->xLock(INNER(f), lock);
  if (rc == rcOK) {
    lf->lock = lock;
  }
  return rc;
}

static int layerUnlock(wl_file *f, int lock) {
  if (forked) {
    return rcOK; // nothing is held here; let SQLite unwind
  }
  layerFile *lf = LF(f);
  if (lock != lockNone) {
    return IO(f)->xUnlock(INNER(f), lock);
  }
  lf->lock = lockNone;
  if (lf->direct.gated) {
    // Go ends what it adopted before the gate's pin goes: its own pin.
    int rc = lf->direct.adopted ? IO(f)->xUnlock(INNER(f), lock) : rcOK;
    leaveGate(lf);
    return rc;
  }
  lf->direct.fd = -1; // the version may be unpinned from here on
  return IO(f)->xUnlock(INNER(f), lock);
}

// No connection holds a RESERVED lock on a replica: they cannot write.
static int layerCheckReservedLock(wl_file *f, int *out) {
  (void)f;
  *out = 0;
  if (forked) {
    return refuse(rcIOErrCheckReservedLock);
  }
  return rcOK;
}

static int layerFileControl(wl_file *f, int op, void *arg) {
  if (forked) {
    return rcNotFound;
  }
  return IO(f)->xFileControl(INNER(f), op, arg);
}

static int layerSectorSize(wl_file *f) {
  if (forked) {
    return 4096;
  }
  return IO(f)->xSectorSize(INNER(f));
}

static int layerDeviceCharacteristics(wl_file *f) {
  if (forked) {
    return 0;
  }
  return IO(f)->xDeviceCharacteristics(INNER(f));
}

static int layerOpen(wl_vfs *vfs, const char *name, wl_file *f, int flags, int *outFlags) {
  (void)vfs;
  if (forked) {
    f->pMethods = NULL; // nothing to close
    return refuse(rcCantOpen);
  }
  layerFile *lf = LF(f);
  lf->main = (flags & openMainDB) != 0;
  lf->lock = lockNone;
  memset(&lf->direct, 0, sizeof lf->direct);
  lf->direct.fd = -1;
  memset(INNER(f), 0, (size_t)inner->szOsFile);
  int rc = inner->xOpen(inner, name, INNER(f), flags, outFlags);
  // sqlite3vfs sets its methods even when the open fails, and SQLite then
  // calls xClose; mirror that so the close reaches it.
  f->pMethods = INNER(f)->pMethods != NULL ? &layerIO : NULL;
  if (rc == rcOK && lf->main && !walrustKnowsFile(INNER_ID(f), &lf->direct)) {
    // The layer finds Go's file by the id after SQLite's header (see
    // vfs/seam.go): if that no longer names one, reading on would misread.
    fprintf(stderr, "walrust: psanford/sqlite3vfs does not lay out its files as walrust was built "
                    "to expect (vfs/seam.go); refusing to open %s\n", name);
    return rcCantOpen; // SQLite calls xClose, which reaches sqlite3vfs
  }
  return rc;
}

static int layerDelete(wl_vfs *vfs, const char *name, int syncDir) {
  (void)vfs;
  if (forked) {
    return refuse(rcIOErrDelete);
  }
  return inner->xDelete(inner, name, syncDir);
}

// No -journal or -wal file exists next to a replica, so SQLite never tries
// to roll one back or open a WAL; Go's xAccess says the same of any name.
static int layerAccess(wl_vfs *vfs, const char *name, int flags, int *out) {
  (void)vfs;
  (void)name;
  (void)flags;
  *out = 0;
  if (forked) {
    return refuse(rcIOErrAccess);
  }
  return rcOK;
}

// xFullPathname is the first call of every open, before xOpen.
static int layerFullPathname(wl_vfs *vfs, const char *name, int n, char *out) {
  (void)vfs;
  if (forked) {
    return refuse(rcCantOpen);
  }
  return inner->xFullPathname(inner, name, n, out);
}

// Time, sleep and randomness need no Go: the default VFS answers them, in a
// child as well, so SQL functions such as datetime('now') keep working.
static int layerRandomness(wl_vfs *vfs, int n, char *out) {
  (void)vfs;
  return dflt->xRandomness(dflt, n, out);
}

static int layerSleep(wl_vfs *vfs, int us) {
  (void)vfs;
  return dflt->xSleep(dflt, us);
}

static int layerCurrentTime(wl_vfs *vfs, double *now) {
  (void)vfs;
  return dflt->xCurrentTime(dflt, now);
}

static int layerCurrentTimeInt64(wl_vfs *vfs, int64_t *now) {
  (void)vfs;
  if (dflt->iVersion >= 2 && dflt->xCurrentTimeInt64 != NULL) {
    return dflt->xCurrentTimeInt64(dflt, now);
  }
  double d = 0;
  int rc = dflt->xCurrentTime(dflt, &d);
  *now = (int64_t)(d * 86400000.0);
  return rc;
}

static void onFork(void) { forked = 1; }

int walrustForked(void) { return forked; }

const char *walrustForkedMessage(void) { return forkedMsg; }

uint64_t walrustDirectReads(void) { return __atomic_load_n(&directReads, __ATOMIC_RELAXED); }

uint64_t walrustGatedTransactions(void) { return __atomic_load_n(&gatedTxns, __ATOMIC_RELAXED); }

void walrustGates(int on) { __atomic_store_n(&gatesOff, !on, __ATOMIC_RELAXED); }

// wrap returns the layer over v, the VFS sqlite3vfs registered, to be
// registered in its place under the same name; d is the default VFS. NULL
// when the layer exists already (a second load) or cannot be made.
static wl_vfs *wrap(wl_vfs *v, wl_vfs *d) {
  if (inner != NULL || v == NULL || d == NULL || v == d) {
    return NULL;
  }
  if (pthread_atfork(NULL, NULL, onFork) != 0) {
    return NULL;
  }
  layerIO = (wl_io_methods){
      .iVersion = 1,
      .xClose = layerClose,
      .xRead = layerRead,
      .xWrite = layerWrite,
      .xTruncate = layerTruncate,
      .xSync = layerSync,
      .xFileSize = layerFileSize,
      .xLock = layerLock,
      .xUnlock = layerUnlock,
      .xCheckReservedLock = layerCheckReservedLock,
      .xFileControl = layerFileControl,
      .xSectorSize = layerSectorSize,
      .xDeviceCharacteristics = layerDeviceCharacteristics,
  };
  layer = *v; // the same name: sqlite3vfs finds its Go VFS by it
  layer.iVersion = 2;
  layer.pNext = NULL;
  layer.szOsFile = (int)sizeof(layerFile) + v->szOsFile;
  layer.xOpen = layerOpen;
  layer.xDelete = layerDelete;
  layer.xAccess = layerAccess;
  layer.xFullPathname = layerFullPathname;
  layer.xRandomness = layerRandomness;
  layer.xSleep = layerSleep;
  layer.xCurrentTime = layerCurrentTime;
  layer.xCurrentTimeInt64 = layerCurrentTimeInt64;
  inner = v;
  dflt = d;
  return &layer;
}

static int installLayer(const wl_registry *r, const char *name) {
  wl_vfs *v = r->find(name);
  wl_vfs *l = wrap(v, r->find(NULL));
  if (l == NULL) {
    return v == NULL ? 1 : (v == &layer ? 0 : 1); // installed already, unless there was no VFS
  }
  // An open racing with this first registration may find no VFS by the
  // name for a moment; it could not count on the name before it returned.
  int rc = r->unreg(v);
  if (rc == 0) {
    rc = r->reg(l, 0);
  }
  return rc;
}

int walrustLayerInstall(const wl_registry *r, const char *name) {
  int rc = installLayer(r, name);
  if (rc == rcOK) {
    rc = walrustRouterInstall(r, &layer);
  }
  return rc;
}
