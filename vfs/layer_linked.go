//go:build !SQLITE3VFS_LOADABLE_EXT

package vfs

/*
#include <stdlib.h>
int walrustLayerInstallLinked(const char *name);
const char *walrustSQLInstallLinked(const char *version);
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"

	root "github.com/walrust/walrust"
)

// installLayer puts the C layer (layer.c) in place of the VFS that
// sqlite3vfs registered, and registers walrust's SQL functions
// (sqlfunc.c) for the connections opened from now on.
func installLayer() error {
	// The version string stays for the life of the process: SQL
	// functions return it.
	if msg := C.walrustSQLInstallLinked(C.CString(root.Version())); msg != nil {
		return errors.New(C.GoString(msg))
	}
	name := C.CString(Name)
	defer C.free(unsafe.Pointer(name))
	if rc := C.walrustLayerInstallLinked(name); rc != 0 {
		return fmt.Errorf("install the C layer over VFS %q, or (%s) register it as the default VFS: SQLite error %d", Name, defaultVFSEnv, int(rc))
	}
	return nil
}
