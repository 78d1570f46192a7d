// Package python holds the Python package walrust-vfs (import walrust_vfs,
// in walrust_vfs/), the script that builds its wheel (build_wheel.py, run
// by make wheel) and the tests of the built wheel: installed with pip into
// fresh virtual environments of Debian's python3, it follows a store
// through sqlite3 and through apsw. The package has no Go code besides its
// tests.
package python
