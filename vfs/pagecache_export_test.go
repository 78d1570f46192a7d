package vfs

// SetReadHookForTest calls h with every read SQLite makes of a database
// file, until restore is called.
func SetReadHookForTest(h func(path string, off int64, n int)) (restore func()) {
	readHook.Store(&h)
	return func() { readHook.Store(nil) }
}
