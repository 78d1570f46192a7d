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

// SQLite's VFS registry through the API table: sqlite3_vfs_find and the
// others are macros over it here, so each is wrapped in a function.
static wl_vfs *apiFind(const char *name) { return (wl_vfs *)sqlite3_vfs_find(name); }
static int apiRegister(wl_vfs *vfs, int makeDefault) { return sqlite3_vfs_register((sqlite3_vfs *)vfs, makeDefault); }
static int apiUnregister(wl_vfs *vfs) { return sqlite3_vfs_unregister((sqlite3_vfs *)vfs); }

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
  static const wl_registry api = {.find = apiFind, .reg = apiRegister, .unreg = apiUnregister};
  if (walrustLayerInstall(&api, "walrust") != SQLITE_OK) {
    return fail(pzErrMsg, "walrust: cannot install its C layer over the walrust VFS");
  }
  // The VFS must outlive the connection that loaded it: other connections
  // in the process open databases through it.
  return SQLITE_OK_LOAD_PERMANENTLY;
}
