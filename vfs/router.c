// The router: default-VFS mode (WALRUST_DEFAULT_VFS=1), for clients that
// can neither pass a URI nor choose a VFS (better-sqlite3, Bun, PHP's
// SQLite3, Python's sqlite3.connect(path)).
//
// Registered as SQLite's default VFS under the name "walrust-default", it
// sends each file either to the layer (layer.c, the "walrust" VFS) or to
// the VFS that was the default before it (unix), decided by the main
// database's name, in C, without entering Go:
//
//   - a walrust replica: the name is one WALRUST_REPLICAS maps (Go hands
//     the mapped names over once, at load: walrustRouterMap), or
//     <name>-replica-state exists (one access(2));
//   - anything else passes through.
//
// A passed-through file is opened by the previous default VFS itself, into
// the same sqlite3_file (szOsFile is the larger of the two), so SQLite
// calls that VFS's own io_methods (version 3: WAL, shared memory, mmap)
// and an ordinary database works as without walrust, journals, -wal and
// -shm included. A journal or WAL (by open flags, or for xAccess and
// xDelete by its -journal, -wal or -shm suffix) goes where its main
// database goes; temporary files, which have no main database to follow,
// always pass through.
//
// Cost: one access(2) per open and per xAccess/xDelete of a file that is
// not mapped (SQLite asks xAccess for a hot journal at the start of each
// read transaction of a rollback-journal database), and a string compare
// per mapped name. Time, sleep, randomness (through the layer) and
// dynamic loading are the previous default's.
//
// Limits: a main database whose own name ends in -journal, -wal or -shm
// is routed, in xAccess and xDelete, as the database without the suffix;
// a state file that appears or goes while a database is open does not
// move files already open.
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "layer.h"

enum {
  rcOK = 0,
  rcNoMem = 7,
  openMainDB = 0x100,
  openMainJournal = 0x800,
  openWAL = 0x80000,
};

static const char routerName[] = "walrust-default";
static const char stateSuffix[] = "-replica-state";

// Set by Go (walrustRouterEnable, walrustRouterMap) before the router is
// registered; read-only once SQLite can call it.
static int enabled;
static char **mapped;
static int nmapped;

static wl_vfs router;
static wl_vfs *prev;    // the default VFS before the router
static wl_vfs *walrust; // the layer

int walrustRouterEnable(void) {
  enabled = 1;
  return rcOK;
}

int walrustRouterMap(const char *name) {
  char **m = realloc(mapped, (size_t)(nmapped + 1) * sizeof *m);
  if (m == NULL) {
    return rcNoMem;
  }
  mapped = m;
  if ((mapped[nmapped] = strdup(name)) == NULL) {
    return rcNoMem;
  }
  nmapped++;
  return rcOK;
}

// isReplica says whether the main database db is walrust's to serve.
static int isReplica(const char *db, size_t n) {
  for (int i = 0; i < nmapped; i++) {
    if (strlen(mapped[i]) == n && memcmp(mapped[i], db, n) == 0) {
      return 1;
    }
  }
  char stack[512];
  size_t need = n + sizeof stateSuffix;
  char *state = need <= sizeof stack ? stack : malloc(need);
  if (state == NULL) {
    return 0;
  }
  memcpy(state, db, n);
  memcpy(state + n, stateSuffix, sizeof stateSuffix);
  int is = access(state, F_OK) == 0;
  if (state != stack) {
    free(state);
  }
  return is;
}

static int endsWith(const char *s, size_t n, const char *suffix) {
  size_t k = strlen(suffix);
  return n > k && memcmp(s + n - k, suffix, k) == 0;
}

// route is the VFS for a file name: that of its main database, with a
// journal's, WAL's or shared memory's suffix taken off when strip.
static wl_vfs *route(const char *name, int strip) {
  if (name == NULL) {
    return prev;
  }
  size_t n = strlen(name);
  if (strip) {
    static const char *const suffixes[] = {"-journal", "-wal", "-shm"};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
      if (endsWith(name, n, suffixes[i])) {
        n -= strlen(suffixes[i]);
        break;
      }
    }
  }
  return isReplica(name, n) ? walrust : prev;
}

static int routerOpen(wl_vfs *vfs, const char *name, wl_file *f, int flags, int *outFlags) {
  (void)vfs;
  wl_vfs *v = prev;
  if (flags & openMainDB) {
    v = route(name, 0);
  } else if (flags & (openMainJournal | openWAL)) {
    v = route(name, 1);
  }
  return v->xOpen(v, name, f, flags, outFlags);
}

static int routerDelete(wl_vfs *vfs, const char *name, int syncDir) {
  (void)vfs;
  wl_vfs *v = route(name, 1);
  return v->xDelete(v, name, syncDir);
}

static int routerAccess(wl_vfs *vfs, const char *name, int flags, int *out) {
  (void)vfs;
  wl_vfs *v = route(name, 1);
  return v->xAccess(v, name, flags, out);
}

// The previous default makes the name absolute (resolving symbolic links);
// a replica's name is then made by walrust, as an open with vfs=walrust
// would, so that both reach the same follower.
static int routerFullPathname(wl_vfs *vfs, const char *name, int n, char *out) {
  (void)vfs;
  int rc = prev->xFullPathname(prev, name, n, out);
  if ((rc & 0xff) == rcOK && route(out, 0) == walrust) {
    return walrust->xFullPathname(walrust, name, n, out);
  }
  return rc;
}

static void *routerDlOpen(wl_vfs *vfs, const char *name) {
  (void)vfs;
  return prev->xDlOpen(prev, name);
}

static void routerDlError(wl_vfs *vfs, int n, char *msg) {
  (void)vfs;
  prev->xDlError(prev, n, msg);
}

static void (*routerDlSym(wl_vfs *vfs, void *h, const char *sym))(void) {
  (void)vfs;
  return prev->xDlSym(prev, h, sym);
}

static void routerDlClose(wl_vfs *vfs, void *h) {
  (void)vfs;
  prev->xDlClose(prev, h);
}

static int routerGetLastError(wl_vfs *vfs, int n, char *msg) {
  (void)vfs;
  return prev->xGetLastError != NULL ? prev->xGetLastError(prev, n, msg) : 0;
}

static int max(int a, int b) { return a > b ? a : b; }

int walrustRouterInstall(const wl_registry *r, wl_vfs *layer) {
  if (!enabled) {
    return rcOK;
  }
  wl_vfs *have = r->find(routerName);
  if (have == &router) {
    return rcOK; // a second load
  }
  wl_vfs *d = r->find(NULL);
  if (have != NULL || d == NULL || d == layer || layer == NULL) {
    return 1;
  }
  prev = d;
  walrust = layer;
  router = (wl_vfs){
      .iVersion = 2,
      .szOsFile = max(prev->szOsFile, layer->szOsFile),
      .mxPathname = max(prev->mxPathname, layer->mxPathname),
      .zName = routerName,
      .xOpen = routerOpen,
      .xDelete = routerDelete,
      .xAccess = routerAccess,
      .xFullPathname = routerFullPathname,
      .xDlOpen = prev->xDlOpen != NULL ? routerDlOpen : NULL,
      .xDlError = prev->xDlError != NULL ? routerDlError : NULL,
      .xDlSym = prev->xDlSym != NULL ? routerDlSym : NULL,
      .xDlClose = prev->xDlClose != NULL ? routerDlClose : NULL,
      // The layer's answer from the default VFS it found at its install,
      // the same call as this one: prev.
      .xRandomness = layer->xRandomness,
      .xSleep = layer->xSleep,
      .xCurrentTime = layer->xCurrentTime,
      .xGetLastError = routerGetLastError,
      .xCurrentTimeInt64 = layer->xCurrentTimeInt64,
  };
  return r->reg(&router, 1);
}
