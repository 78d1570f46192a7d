package replica

import (
	"errors"
	"fmt"
	"os"

	"github.com/walrust/walrust/vfs/internal/durable"
	"golang.org/x/sys/unix"
)

// ErrFollowed means another process follows this replica: it holds the
// replica's lock file. This process can still read the replica (Passive)
// and take over when that process exits.
var ErrFollowed = errors.New("another process follows this replica")

// leaderLock is the exclusive flock on <db>-replica-lock that elects the one
// process whose follower writes the replica. flock, unlike fcntl, belongs to
// the open file description, so no other descriptor of the file, opened or
// closed anywhere in the process, can drop it; and the kernel releases it
// when the process dies, however it dies.
type leaderLock struct{ f *os.File }

func lockPath(dbPath string) string { return dbPath + "-replica-lock" }

func acquireLeader(dbPath string) (*leaderLock, error) {
	f, err := os.OpenFile(lockPath(dbPath), os.O_RDWR|os.O_CREATE, durable.Mode)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrFollowed
		}
		return nil, fmt.Errorf("lock %s: %w", lockPath(dbPath), err)
	}
	return &leaderLock{f: f}, nil
}

func (l *leaderLock) release() {
	if l != nil && l.f != nil {
		l.f.Close() // closing the description drops the flock
		l.f = nil
	}
}
