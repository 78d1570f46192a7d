//go:build !SQLITE3VFS_LOADABLE_EXT

// SQLite's VFS registry in a program linked with SQLite (mattn/go-sqlite3):
// its functions are called directly. The extension reaches them through
// SQLite's API table instead (cshim/walrust.c); both install the layer
// with walrustLayerInstall (layer.c).
#include <stddef.h>

#include "layer.h"

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
