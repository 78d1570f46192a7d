// The loadable extension's entry point. SQLite derives its name from the
// file name: build/walrust.so -> sqlite3_walrust_init.
#include <stdlib.h>

#include "_cgo_export.h"
#include "sqlite3ext.h"
// sqlite3vfs.c (built with SQLITE3VFS_LOADABLE_EXT) defines the API table
// pointer through SQLITE_EXTENSION_INIT1; every SQLite call the VFS makes
// goes through it. Setting it is what SQLITE_EXTENSION_INIT2 does, and must
// happen before anything else calls SQLite.
SQLITE_EXTENSION_INIT3

#include "../vfs/layer.h"

static int fail(char **pzErrMsg, const char *msg) {
  if (pzErrMsg != NULL) {
    *pzErrMsg = sqlite3_mprintf("%s", msg); // SQLite frees it with sqlite3_free
  }
  return SQLITE_ERROR;
}

// installLayer puts the C layer (vfs/layer.c) in place of the VFS that
// sqlite3vfs registered, through the API table: in a program linked with
// SQLite, vfs/layer_linked.c does the same with direct calls.
static int installLayer(void) {
  sqlite3_vfs *v = sqlite3_vfs_find("walrust");
  wl_vfs *l = walrustLayerWrap((wl_vfs *)v, (wl_vfs *)sqlite3_vfs_find(0));
  if (l == NULL) {
    return v == NULL ? SQLITE_ERROR : SQLITE_OK; // installed already, unless there was no VFS
  }
  // An open racing with this first load may find no VFS by the name for a
  // moment; it could not count on the name before the load returned.
  int rc = sqlite3_vfs_unregister(v);
  if (rc == SQLITE_OK) {
    rc = sqlite3_vfs_register((sqlite3_vfs *)l, 0);
  }
  return rc;
}

int sqlite3_walrust_init(sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi) {
  (void)db;
  SQLITE_EXTENSION_INIT2(pApi);
  // A load in a forked child finds the library loaded already, and its Go
  // runtime unusable: walrustRegister would never return.
  if (walrustForked()) {
    return fail(pzErrMsg, walrustForkedMessage());
  }
  char *err = walrustRegister();
  if (err != NULL) {
    int rc = fail(pzErrMsg, err);
    free(err);
    return rc;
  }
  if (installLayer() != SQLITE_OK) {
    return fail(pzErrMsg, "walrust: cannot install its C layer over the walrust VFS");
  }
  // The VFS must outlive the connection that loaded it: other connections
  // in the process open databases through it.
  return SQLITE_OK_LOAD_PERMANENTLY;
}
