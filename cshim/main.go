//go:build SQLITE3VFS_LOADABLE_EXT

// Command cshim is the walrust SQLite extension (build/walrust.so): built
// with -buildmode=c-shared, its C entry point sqlite3_walrust_init registers
// the walrust VFS in the process that loads it.
package main

// #cgo CFLAGS: -Wall -Wextra -Werror
import "C"

import (
	root "github.com/walrust/walrust"
	"github.com/walrust/walrust/vfs"
)

// walrustRegister registers the VFS; it returns NULL, or an error message
// the caller frees.
//
//export walrustRegister
func walrustRegister() *C.char {
	if err := vfs.Register(); err != nil {
		return C.CString(err.Error())
	}
	return nil
}

// walrustVersionString is walrust's version for walrust_version(); the
// string lives as long as the process.
//
//export walrustVersionString
func walrustVersionString() *C.char { return C.CString(root.Version()) }

func main() {}
