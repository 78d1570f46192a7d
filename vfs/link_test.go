package vfs

// The package's C calls SQLite, which the program links in: the
// end-to-end tests (vfs/e2e) and the commands through mattn/go-sqlite3,
// and so this package's own test binary.
import _ "github.com/mattn/go-sqlite3"
