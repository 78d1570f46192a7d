//go:build SQLITE3VFS_LOADABLE_EXT

package vfs

// installLayer does nothing in the extension: its entry point
// (cshim/walrust.c) installs the layer through SQLite's API table, which
// only C code can reach.
func installLayer() error { return nil }
