//go:build !linux

package replica

import "os"

// startWriteback is a hint that only Linux takes; the fsync that follows
// does all the work elsewhere.
func startWriteback(f *os.File, off, n int64) {}
