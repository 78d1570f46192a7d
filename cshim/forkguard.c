// The fork guard: a C layer over the VFS that psanford/sqlite3vfs registers.
//
// Go's runtime does not survive fork(): in the child only the forking thread
// exists, so the goroutines that follow replicas are gone, and a call into Go
// can block forever on state that another thread held at the fork. Pre-fork
// servers (gunicorn --preload, uwsgi without lazy-apps, a Python program that
// forks workers) load the extension, fork, and would then stall silently, or
// read a replica that never advances. In a forked child the guard answers
// every call itself, with an error and one line on stderr, and never enters Go.
// In the process that loaded the extension it only forwards.
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "sqlite3ext.h"
SQLITE_EXTENSION_INIT3

#include "forkguard.h"

// Set by the child handler of pthread_atfork, before fork() returns in the
// child; never set in the parent. The handler stays registered, so
// grandchildren are covered too.
static volatile int forked;
static volatile int warned;

static sqlite3_vfs *inner; // sqlite3vfs's VFS: every call enters Go
static sqlite3_vfs *dflt;  // the default VFS: time, sleep and randomness
static sqlite3_vfs guard;
static sqlite3_io_methods guardIO;

static const char forkedMsg[] =
    "walrust: this process was forked after it loaded the walrust extension; "
    "the Go runtime that follows replicas does not survive fork(), so walrust "
    "databases cannot be used here. Load the extension and open databases in "
    "each worker after it starts (for example gunicorn without --preload).";

// refuse reports a call made in a forked child, once on stderr and every
// time through SQLite's error log, and returns rc.
static int refuse(int rc) {
  if (!warned) {
    warned = 1;
    fprintf(stderr, "%s\n", forkedMsg);
  }
  sqlite3_log(rc, "%s", forkedMsg);
  return rc;
}

// A guard file is SQLite's file header followed by sqlite3vfs's own file.
// sqlite3_file holds one pointer, so the inner file stays pointer-aligned.
#define INNER(f) ((sqlite3_file *)((char *)(f) + sizeof(sqlite3_file)))
#define IO(f) (INNER(f)->pMethods)

static int guardClose(sqlite3_file *f) {
  if (forked) {
    return SQLITE_OK; // the Go side of the file is the parent's to close
  }
  return IO(f)->xClose(INNER(f));
}

static int guardRead(sqlite3_file *f, void *buf, int n, sqlite3_int64 off) {
  if (forked) {
    return refuse(SQLITE_IOERR_READ);
  }
  return IO(f)->xRead(INNER(f), buf, n, off);
}

static int guardWrite(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off) {
  if (forked) {
    return refuse(SQLITE_IOERR_WRITE);
  }
  return IO(f)->xWrite(INNER(f), buf, n, off);
}

static int guardTruncate(sqlite3_file *f, sqlite3_int64 size) {
  if (forked) {
    return refuse(SQLITE_IOERR_TRUNCATE);
  }
  return IO(f)->xTruncate(INNER(f), size);
}

static int guardSync(sqlite3_file *f, int flags) {
  if (forked) {
    return refuse(SQLITE_IOERR_FSYNC);
  }
  return IO(f)->xSync(INNER(f), flags);
}

static int guardFileSize(sqlite3_file *f, sqlite3_int64 *size) {
  if (forked) {
    return refuse(SQLITE_IOERR_FSTAT);
  }
  return IO(f)->xFileSize(INNER(f), size);
}

static int guardLock(sqlite3_file *f, int lock) {
  if (forked) {
    return refuse(SQLITE_IOERR_LOCK);
  }
  return IO(f)->xLock(INNER(f), lock);
}

static int guardUnlock(sqlite3_file *f, int lock) {
  if (forked) {
    return SQLITE_OK; // nothing is held here; let SQLite unwind
  }
  return IO(f)->xUnlock(INNER(f), lock);
}

static int guardCheckReservedLock(sqlite3_file *f, int *out) {
  if (forked) {
    *out = 0;
    return refuse(SQLITE_IOERR_CHECKRESERVEDLOCK);
  }
  return IO(f)->xCheckReservedLock(INNER(f), out);
}

static int guardFileControl(sqlite3_file *f, int op, void *arg) {
  if (forked) {
    return SQLITE_NOTFOUND;
  }
  return IO(f)->xFileControl(INNER(f), op, arg);
}

static int guardSectorSize(sqlite3_file *f) {
  if (forked) {
    return 4096;
  }
  return IO(f)->xSectorSize(INNER(f));
}

static int guardDeviceCharacteristics(sqlite3_file *f) {
  if (forked) {
    return 0;
  }
  return IO(f)->xDeviceCharacteristics(INNER(f));
}

static int guardOpen(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *outFlags) {
  (void)vfs;
  if (forked) {
    f->pMethods = NULL; // nothing to close
    return refuse(SQLITE_CANTOPEN);
  }
  memset(INNER(f), 0, inner->szOsFile);
  int rc = inner->xOpen(inner, name, INNER(f), flags, outFlags);
  // sqlite3vfs sets its methods even when the open fails, and SQLite then
  // calls xClose; mirror that so the close reaches it.
  f->pMethods = INNER(f)->pMethods != NULL ? &guardIO : NULL;
  return rc;
}

static int guardDelete(sqlite3_vfs *vfs, const char *name, int syncDir) {
  (void)vfs;
  if (forked) {
    return refuse(SQLITE_IOERR_DELETE);
  }
  return inner->xDelete(inner, name, syncDir);
}

static int guardAccess(sqlite3_vfs *vfs, const char *name, int flags, int *out) {
  (void)vfs;
  if (forked) {
    *out = 0;
    return refuse(SQLITE_IOERR_ACCESS);
  }
  return inner->xAccess(inner, name, flags, out);
}

// xFullPathname is the first call of every open, before xOpen.
static int guardFullPathname(sqlite3_vfs *vfs, const char *name, int n, char *out) {
  (void)vfs;
  if (forked) {
    return refuse(SQLITE_CANTOPEN);
  }
  return inner->xFullPathname(inner, name, n, out);
}

// Time, sleep and randomness need no Go: the default VFS answers them, in
// the child as well, so SQL functions such as datetime('now') keep working.
static int guardRandomness(sqlite3_vfs *vfs, int n, char *out) {
  (void)vfs;
  return dflt->xRandomness(dflt, n, out);
}

static int guardSleep(sqlite3_vfs *vfs, int us) {
  (void)vfs;
  return dflt->xSleep(dflt, us);
}

static int guardCurrentTime(sqlite3_vfs *vfs, double *now) {
  (void)vfs;
  return dflt->xCurrentTime(dflt, now);
}

static int guardCurrentTimeInt64(sqlite3_vfs *vfs, sqlite3_int64 *now) {
  (void)vfs;
  if (dflt->iVersion >= 2 && dflt->xCurrentTimeInt64 != NULL) {
    return dflt->xCurrentTimeInt64(dflt, now);
  }
  double d = 0;
  int rc = dflt->xCurrentTime(dflt, &d);
  *now = (sqlite3_int64)(d * 86400000.0);
  return rc;
}

static void onFork(void) { forked = 1; }

int walrustForked(void) { return forked; }

const char *walrustForkedMessage(void) { return forkedMsg; }

int walrustInstallForkGuard(const char *name) {
  if (inner != NULL) {
    return SQLITE_OK; // a later load in the same process: installed already
  }
  sqlite3_vfs *v = sqlite3_vfs_find(name);
  sqlite3_vfs *d = sqlite3_vfs_find(0);
  if (v == NULL || d == NULL || v == d) {
    return SQLITE_ERROR;
  }
  if (pthread_atfork(NULL, NULL, onFork) != 0) {
    return SQLITE_ERROR;
  }
  guardIO = (sqlite3_io_methods){
      .iVersion = 1,
      .xClose = guardClose,
      .xRead = guardRead,
      .xWrite = guardWrite,
      .xTruncate = guardTruncate,
      .xSync = guardSync,
      .xFileSize = guardFileSize,
      .xLock = guardLock,
      .xUnlock = guardUnlock,
      .xCheckReservedLock = guardCheckReservedLock,
      .xFileControl = guardFileControl,
      .xSectorSize = guardSectorSize,
      .xDeviceCharacteristics = guardDeviceCharacteristics,
  };
  guard = *v; // the same name: sqlite3vfs finds its Go VFS by it
  guard.iVersion = 2;
  guard.pNext = NULL;
  guard.szOsFile = (int)sizeof(sqlite3_file) + v->szOsFile;
  guard.xOpen = guardOpen;
  guard.xDelete = guardDelete;
  guard.xAccess = guardAccess;
  guard.xFullPathname = guardFullPathname;
  guard.xRandomness = guardRandomness;
  guard.xSleep = guardSleep;
  guard.xCurrentTime = guardCurrentTime;
  guard.xCurrentTimeInt64 = guardCurrentTimeInt64;
  inner = v;
  dflt = d;
  // An open racing with this first load may find no VFS by the name for a
  // moment; it could not count on the name before the load returned anyway.
  int rc = sqlite3_vfs_unregister(v);
  if (rc == SQLITE_OK) {
    rc = sqlite3_vfs_register(&guard, 0);
  }
  return rc;
}
