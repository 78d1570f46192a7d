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
#include "../vfs/sqlfunc.h"

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

// SQLite's function API through the API table, likewise.
typedef void (*apiFunc)(sqlite3_context *, int, sqlite3_value **);
static int apiCreateFunction(wl_db *db, const char *name, int nArg, int textRep, void *app,
                             void (*xFunc)(wl_context *, int, wl_value **),
                             void (*xStep)(wl_context *, int, wl_value **), void (*xFinal)(wl_context *)) {
  return sqlite3_create_function((sqlite3 *)db, name, nArg, textRep, app, (apiFunc)xFunc, (apiFunc)xStep,
                                 (void (*)(sqlite3_context *))xFinal);
}
static void apiResultText(wl_context *ctx, const char *text, int n, void (*destructor)(void *)) {
  sqlite3_result_text((sqlite3_context *)ctx, text, n, destructor);
}
static int apiAutoExtension(void (*entry)(void)) { return sqlite3_auto_extension(entry); }
static int apiLibversionNumber(void) { return sqlite3_libversion_number(); }
static wl_db *apiContextDbHandle(wl_context *ctx) { return sqlite3_context_db_handle((sqlite3_context *)ctx); }
static int apiFileControl(wl_db *db, const char *dbName, int op, void *arg) {
  return sqlite3_file_control((sqlite3 *)db, dbName, op, arg);
}
static void apiResultInt64(wl_context *ctx, long long v) { sqlite3_result_int64((sqlite3_context *)ctx, v); }
static void apiResultDouble(wl_context *ctx, double v) { sqlite3_result_double((sqlite3_context *)ctx, v); }
static void apiResultError(wl_context *ctx, const char *msg, int n) { sqlite3_result_error((sqlite3_context *)ctx, msg, n); }
static void apiFree(void *p) { sqlite3_free(p); }
static long long apiValueInt64(wl_value *v) { return sqlite3_value_int64((sqlite3_value *)v); }
static int apiValueType(wl_value *v) { return sqlite3_value_type((sqlite3_value *)v); }

int sqlite3_walrust_init(sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi) {
  SQLITE_EXTENSION_INIT2(pApi);
  // A load in a forked child finds the library loaded already, and its Go
  // runtime unusable: walrustRegister would never return.
  if (walrustForked()) {
    return fail(pzErrMsg, walrustForkedMessage());
  }
  // The SQLite version first: an older one fails the load with a message,
  // before anything of walrust is in place.
  static const wl_sql sql = {
      .create_function = apiCreateFunction,
      .result_text = apiResultText,
      .auto_extension = apiAutoExtension,
      .libversion_number = apiLibversionNumber,
      .context_db_handle = apiContextDbHandle,
      .file_control = apiFileControl,
      .result_int64 = apiResultInt64,
      .result_double = apiResultDouble,
      .result_error = apiResultError,
      .free = apiFree,
      .value_int64 = apiValueInt64,
      .value_type = apiValueType,
  };
  const char *tooOld = walrustSQLInstall(&sql, db, walrustVersionString());
  if (tooOld != NULL) {
    return fail(pzErrMsg, tooOld);
  }
  char *err = walrustRegister();
  if (err != NULL) {
    int rc = fail(pzErrMsg, err);
    free(err);
    return rc;
  }
  static const wl_registry api = {.find = apiFind, .reg = apiRegister, .unreg = apiUnregister};
  if (walrustLayerInstall(&api, "walrust") != SQLITE_OK) {
    return fail(pzErrMsg, "walrust: cannot install its C layer over the walrust VFS, or (WALRUST_DEFAULT_VFS) "
                          "register it as SQLite's default VFS");
  }
  // The VFS must outlive the connection that loaded it: other connections
  // in the process open databases through it.
  return SQLITE_OK_LOAD_PERMANENTLY;
}
