// The C layer between SQLite and walrust's Go VFS (see layer.c).
//
// SQLite's VFS structures are declared here, from the public ABI that
// sqlite3.h documents (sqlite3_file, sqlite3_io_methods version 1,
// sqlite3_vfs version 2), because this package is built both into the
// extension and into programs linked with mattn/go-sqlite3, and neither
// SQLite header is on its include path in both.
#ifndef WALRUST_LAYER_H
#define WALRUST_LAYER_H

#include <stdint.h>

typedef struct wl_file wl_file;
typedef struct wl_io_methods wl_io_methods;
typedef struct wl_vfs wl_vfs;

struct wl_file {
  const wl_io_methods *pMethods;
};

struct wl_io_methods {
  int iVersion;
  int (*xClose)(wl_file *);
  int (*xRead)(wl_file *, void *, int amt, int64_t off);
  int (*xWrite)(wl_file *, const void *, int amt, int64_t off);
  int (*xTruncate)(wl_file *, int64_t size);
  int (*xSync)(wl_file *, int flags);
  int (*xFileSize)(wl_file *, int64_t *size);
  int (*xLock)(wl_file *, int lock);
  int (*xUnlock)(wl_file *, int lock);
  int (*xCheckReservedLock)(wl_file *, int *out);
  int (*xFileControl)(wl_file *, int op, void *arg);
  int (*xSectorSize)(wl_file *);
  int (*xDeviceCharacteristics)(wl_file *);
};

struct wl_vfs {
  int iVersion;
  int szOsFile;
  int mxPathname;
  wl_vfs *pNext;
  const char *zName;
  void *pAppData;
  int (*xOpen)(wl_vfs *, const char *name, wl_file *, int flags, int *outFlags);
  int (*xDelete)(wl_vfs *, const char *name, int syncDir);
  int (*xAccess)(wl_vfs *, const char *name, int flags, int *out);
  int (*xFullPathname)(wl_vfs *, const char *name, int n, char *out);
  void *(*xDlOpen)(wl_vfs *, const char *name);
  void (*xDlError)(wl_vfs *, int n, char *msg);
  void (*(*xDlSym)(wl_vfs *, void *, const char *sym))(void);
  void (*xDlClose)(wl_vfs *, void *);
  int (*xRandomness)(wl_vfs *, int n, char *out);
  int (*xSleep)(wl_vfs *, int us);
  int (*xCurrentTime)(wl_vfs *, double *);
  int (*xGetLastError)(wl_vfs *, int, char *);
  int (*xCurrentTimeInt64)(wl_vfs *, int64_t *); // version 2
};

// A replica's gate (replica.Gate, whose GateMem has this layout): while
// nothing changes, a read transaction pins the replica's newest version
// at the gate's current slot and reads it, without calling into Go.
typedef struct wl_gate_slot {
  uint64_t word;    // generation << 32 | open << 31 | pins
  int32_t revoked;  // set: the opening's readers read through Go
  int32_t inflight; // direct reads of the opening's readers under way
  // The opening, as in wl_direct; read only while a pin is held.
  int32_t fd;
  int32_t pageSize;
  int64_t size;
  int64_t limit;
  const uint64_t *bits;
  uint32_t pages;
  int32_t page1; // 1: the base file's page 1 is the version's; 2: the gate's page1 holds it
} wl_gate_slot;

#define WL_GATE_SLOTS 4

typedef struct wl_gate {
  int32_t current; // the slot that may be open
  int32_t pad;
  wl_gate_slot slots[WL_GATE_SLOTS];
  uint8_t page1[WL_GATE_SLOTS][65536]; // each slot's page 1 as its version serves it
} wl_gate;

// What the Go side tells the layer at the start of a read transaction,
// from inside the SHARED lock's call (the layer gives Go this struct's
// address once, at the open: walrustKnowsFile).
typedef struct wl_direct {
  int fd;                // the base file; -1: no transaction reads it directly
  int pageSize;          // page 1 is below this offset
  int64_t limit;         // bytes of the transaction's version the base file serves
  int64_t size;          // the version's size in bytes: what xFileSize answers
  const uint64_t *bits;  // pages to read through Go (one bit per page number); NULL: none
  uint32_t pages;        // pages bits covers; those past it are the base file's
  int32_t page1;         // 1: the base file's page 1 is the version's as served; 2: the
                         // gate's page1Buf is (a gated transaction); 0: Go patches it
  // Revocation (walrustRevoke), when the version expires: set, the layer
  // reads through Go; inflight counts the direct reads under way.
  int32_t revoked;
  int32_t inflight;
  // The connection's replica's gate, set by Go at the open; NULL: every
  // transaction of this connection begins in Go (max_lag= is checked
  // there). gated: this transaction began at the gate; adopted: Go has
  // taken it over since (it called in), so its unlock calls in too.
  wl_gate *gate;
  int32_t gated;   // 1 + the slot pinned
  int32_t adopted;
} wl_direct;

// SQLite's VFS registry, as the caller reaches it: directly in a program
// linked with SQLite (layer_linked.c), through the extension API table in
// the loadable extension (cshim/walrust.c).
typedef struct wl_registry {
  wl_vfs *(*find)(const char *name);
  int (*reg)(wl_vfs *vfs, int makeDefault);
  int (*unreg)(wl_vfs *vfs);
} wl_registry;

// walrustLayerInstall puts the layer in place of the VFS that sqlite3vfs
// registered under name: 0 (SQLITE_OK) when it is there, also after an
// earlier install; else SQLite's error code, or 1 when there is no such VFS.
// In default-VFS mode it then installs the router (walrustRouterInstall).
int walrustLayerInstall(const wl_registry *r, const char *name);

// walrustRouterEnable turns on default-VFS mode (router.c): the next
// walrustLayerInstall also registers the router as SQLite's default VFS.
// walrustRouterMap adds a main database name the router sends to walrust
// (WALRUST_REPLICAS); 0 (SQLITE_OK), or SQLITE_NOMEM. Both are called
// before the install, never after.
int walrustRouterEnable(void); // 0
int walrustRouterMap(const char *name);

// walrustRouterInstall registers the router over layer as the default VFS,
// when walrustRouterEnable was called; 0 (SQLITE_OK) when it is in place
// or not asked for.
int walrustRouterInstall(const wl_registry *r, wl_vfs *layer);

// walrustForked says whether this process is the child of a fork made after
// the layer was made: then nothing may call into Go.
int walrustForked(void);

// walrustForkedMessage is what to tell a user in that case.
const char *walrustForkedMessage(void);

// walrustRevoke stops direct reads of d's transaction: it returns once
// none is under way, and every later read goes through Go.
void walrustRevoke(wl_direct *d);

// walrustDirectReads counts the reads served without Go (for tests).
uint64_t walrustDirectReads(void);

// walrustGatedTransactions counts the transactions begun at a gate, without
// Go (for tests).
uint64_t walrustGatedTransactions(void);

// walrustGates turns the gates on (1, the default) or off (0: every
// transaction begins in Go, for a test that watches every read).
void walrustGates(int on);

#endif
