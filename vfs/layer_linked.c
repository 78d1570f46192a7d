//go:build !SQLITE3VFS_LOADABLE_EXT

// Installing the layer in a program linked with SQLite (mattn/go-sqlite3):
// SQLite's functions are called directly. The extension installs it through
// SQLite's API table instead (cshim/walrust.c).
#include <stddef.h>

#include "layer.h"

extern wl_vfs *sqlite3_vfs_find(const char *name);
extern int sqlite3_vfs_register(wl_vfs *vfs, int makeDefault);
extern int sqlite3_vfs_unregister(wl_vfs *vfs);

int walrustLayerInstall(const char *name) {
  wl_vfs *v = sqlite3_vfs_find(name);
  wl_vfs *l = walrustLayerWrap(v, sqlite3_vfs_find(0));
  if (l == NULL) {
    return v == NULL ? 1 : 0; // installed already, unless there was no VFS
  }
  // An open racing with this first registration may find no VFS by the
  // name for a moment; it could not count on the name before it returned.
  int rc = sqlite3_vfs_unregister(v);
  if (rc == 0) {
    rc = sqlite3_vfs_register(l, 0);
  }
  return rc;
}
