// Package e2e holds walrust's end-to-end tests: the VFS registered in this
// process, or the extension loaded into the sqlite3 shell, Debian's python3
// and walrust-shell, follows a store that the test publishes to (a file
// store through vfs/testkit/worldtest, a real S3 server, versitygw, through
// ltxtest), that walrust publish fills, or that a real Litestream fills,
// and the tests check what every client sees: rows, TXIDs, walrust_status,
// the log. Bad input, several processes at once, fork, SQL that is not
// trusted, and a store that hangs are covered here too.
//
// The tests look inside package vfs only through vfs/internal/testhooks.
// The package has no code besides its tests.
package e2e
