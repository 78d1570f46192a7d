//go:build !SQLITE3VFS_LOADABLE_EXT

package vfs

/*
#include <stdlib.h>
int walrustLayerInstallLinked(const char *name);
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// installLayer puts the C layer (layer.c) in place of the VFS that
// sqlite3vfs registered.
func installLayer() error {
	name := C.CString(Name)
	defer C.free(unsafe.Pointer(name))
	if rc := C.walrustLayerInstallLinked(name); rc != 0 {
		return fmt.Errorf("install the C layer over VFS %q: SQLite error %d", Name, int(rc))
	}
	return nil
}
