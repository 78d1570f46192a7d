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

#include "forkguard.h"

int sqlite3_walrust_init(sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi) {
  (void)db;
  SQLITE_EXTENSION_INIT2(pApi);
  // A load in a forked child finds the library loaded already, and its Go
  // runtime unusable: walrustRegister would never return.
  if (walrustForked()) {
    if (pzErrMsg != NULL) {
      *pzErrMsg = sqlite3_mprintf("%s", walrustForkedMessage());
    }
    return SQLITE_ERROR;
  }
  char *err = walrustRegister();
  if (err != NULL) {
    if (pzErrMsg != NULL) {
      *pzErrMsg = sqlite3_mprintf("%s", err); // SQLite frees it with sqlite3_free
    }
    free(err);
    return SQLITE_ERROR;
  }
  if (walrustInstallForkGuard("walrust") != SQLITE_OK) {
    if (pzErrMsg != NULL) {
      *pzErrMsg = sqlite3_mprintf("walrust: cannot install the fork guard over the walrust VFS");
    }
    return SQLITE_ERROR;
  }
  // The VFS must outlive the connection that loaded it: other connections
  // in the process open databases through it.
  return SQLITE_OK_LOAD_PERMANENTLY;
}
