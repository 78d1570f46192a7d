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

// walrustSQLInstallLinked registers walrust's SQL functions for every
// connection the program opens from now on.
const char *walrustSQLInstallLinked(const char *version) {
  static const wl_sql linked = {
      .create_function = sqlite3_create_function,
      .result_text = sqlite3_result_text,
      .auto_extension = sqlite3_auto_extension,
      .libversion_number = sqlite3_libversion_number,
  };
  return walrustSQLInstall(&linked, NULL, version);
}
