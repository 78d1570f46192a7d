//go:build !SQLITE3VFS_LOADABLE_EXT

// SQLite's VFS registry in a program linked with SQLite (mattn/go-sqlite3):
// its functions are called directly. The extension reaches them through
// SQLite's API table instead (cshim/walrust.c); both install the layer
// with walrustLayerInstall (layer.c).
#include <stddef.h>

#include "layer.h"
#include "sqlfunc.h"

extern wl_vfs *sqlite3_vfs_find(const char *name);
extern int sqlite3_vfs_register(wl_vfs *vfs, int makeDefault);
extern int sqlite3_vfs_unregister(wl_vfs *vfs);

int walrustLayerInstallLinked(const char *name) {
  static const wl_registry linked = {
      .find = sqlite3_vfs_find,
      .reg = sqlite3_vfs_register,
      .unreg = sqlite3_vfs_unregister,
  };
  return walrustLayerInstall(&linked, name);
}

extern int sqlite3_create_function(wl_db *db, const char *name, int nArg, int textRep, void *app,
                                   void (*xFunc)(wl_context *, int, wl_value **),
                                   void (*xStep)(wl_context *, int, wl_value **), void (*xFinal)(wl_context *));
extern void sqlite3_result_text(wl_context *ctx, const char *text, int n, void (*destructor)(void *));
extern int sqlite3_auto_extension(void (*entry)(void));
extern int sqlite3_libversion_number(void);
extern wl_db *sqlite3_context_db_handle(wl_context *ctx);
extern int sqlite3_file_control(wl_db *db, const char *dbName, int op, void *arg);
extern void sqlite3_result_int64(wl_context *ctx, long long v);
extern void sqlite3_result_double(wl_context *ctx, double v);
extern void sqlite3_result_error(wl_context *ctx, const char *msg, int n);
extern void sqlite3_free(void *p);
extern long long sqlite3_value_int64(wl_value *v);
extern int sqlite3_value_type(wl_value *v);

// walrustSQLInstallLinked registers walrust's SQL functions for every
// connection the program opens from now on.
const char *walrustSQLInstallLinked(const char *version) {
  static const wl_sql linked = {
      .create_function = sqlite3_create_function,
      .result_text = sqlite3_result_text,
      .auto_extension = sqlite3_auto_extension,
      .libversion_number = sqlite3_libversion_number,
      .context_db_handle = sqlite3_context_db_handle,
      .file_control = sqlite3_file_control,
      .result_int64 = sqlite3_result_int64,
      .result_double = sqlite3_result_double,
      .result_error = sqlite3_result_error,
      .free = sqlite3_free,
      .value_int64 = sqlite3_value_int64,
      .value_type = sqlite3_value_type,
  };
  return walrustSQLInstall(&linked, NULL, version);
}
