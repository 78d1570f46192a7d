// The loadable extension's entry point. SQLite derives its name from the
// file name: build/walrust.so -> sqlite3_walrust_init.
#include <stdio.h>
#include <stdlib.h>
#include "_cgo_export.h"

// sqlite3vfs.c (built with SQLITE3VFS_LOADABLE_EXT) defines the API table
// pointer through SQLITE_EXTENSION_INIT1; every SQLite call the VFS makes
// goes through it. Setting it is what SQLITE_EXTENSION_INIT2 does, and must
// happen before anything else calls SQLite.
extern const void *sqlite3_api;
extern char *s3vfsSqlite3Mprintf(const char *str);

#define SQLITE_ERROR 1
#define SQLITE_OK_LOAD_PERMANENTLY 256

int sqlite3_walrust_init(void *db, char **pzErrMsg, const void *pApi) {
  sqlite3_api = pApi;
  char *err = walrustRegister();
  if (err != NULL) {
    if (pzErrMsg != NULL) {
      *pzErrMsg = s3vfsSqlite3Mprintf(err); // SQLite frees it with sqlite3_free
    }
    free(err);
    return SQLITE_ERROR;
  }
  // The VFS must outlive the connection that loaded it: other connections
  // in the process open databases through it.
  return SQLITE_OK_LOAD_PERMANENTLY;
}
