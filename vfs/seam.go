package vfs

/*
#include "layer.h"
*/
import "C"

import (
	"sync"
	_ "unsafe" // for go:linkname

	"github.com/psanford/sqlite3vfs"
)

// The seam with psanford/sqlite3vfs: everything walrust assumes of its
// internals, in one place. Each assumption either fails the build when it
// breaks (a go:linkname to a name that is gone does not link) or is checked
// at run time with a clear error (walrustKnowsFile, at every open of a
// main database), never a crash or a silent misread.
//
//  1. It keeps its open files in fileMap, by a uint64 id, under fileMux.
//  2. That id is the first field after SQLite's sqlite3_file header in the
//     C struct it hands SQLite (layer.c: INNER_ID), which is how the layer
//     finds the Go file of a C one.
//  3. It numbers files from nextFileID, starting at 0.

//go:linkname sqlite3vfsFileMux github.com/psanford/sqlite3vfs.fileMux
var sqlite3vfsFileMux sync.Mutex

//go:linkname sqlite3vfsFileMap github.com/psanford/sqlite3vfs.fileMap
var sqlite3vfsFileMap map[uint64]sqlite3vfs.File

//go:linkname sqlite3vfsNextFileID github.com/psanford/sqlite3vfs.nextFileID
var sqlite3vfsNextFileID uint64

// sqlite3vfsFile is the Go file sqlite3vfs knows by id, or nil.
func sqlite3vfsFile(id uint64) sqlite3vfs.File {
	sqlite3vfsFileMux.Lock()
	defer sqlite3vfsFileMux.Unlock()
	return sqlite3vfsFileMap[id]
}

// skipFileIDZero: when an xOpen fails, SQLite still calls xClose on the
// zeroed sqlite3_file, whose id, 0, would then close whichever connection
// holds file 0. Numbering from 1 means no real file has id 0.
func skipFileIDZero() {
	if sqlite3vfsNextFileID == 0 {
		sqlite3vfsNextFileID = 1
	}
}

// walrustKnowsFile is called by the layer right after it opened a main
// database through sqlite3vfs: 1 when the id it read from the C file (2)
// names a walrust database file sqlite3vfs holds (1), 0 when an assumption
// no longer holds (then the layer refuses the open, saying so). The file
// keeps direct, the layer's struct for it, to fill at each SHARED lock
// (layer.go); it lives in the C file, which outlives the Go one.
//
//export walrustKnowsFile
func walrustKnowsFile(id C.uint64_t, direct *C.wl_direct) (ok C.int) {
	defer func() {
		if p := recover(); p != nil { // no panic may cross into C
			ok = 0
		}
	}()
	if f, is := sqlite3vfsFile(uint64(id)).(*dbFile); is {
		f.direct = direct
		direct.gate = f.gateFor()
		return 1
	}
	return 0
}
