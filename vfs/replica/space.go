package replica

import (
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// checkFreeSpace fails with ENOSPC, a local error that is retried, when
// the file system that holds path has less than need bytes free for an
// unprivileged writer. A file system that cannot say is not an error: the
// writes themselves will tell.
func checkFreeSpace(path string, need int64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Dir(path), &st); err != nil {
		return nil
	}
	if free := int64(st.Bavail) * st.Bsize; need > free {
		return fmt.Errorf("%s: %d bytes needed, %d free: %w", filepath.Dir(path), need, free, unix.ENOSPC)
	}
	return nil
}
