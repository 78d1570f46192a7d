package replica

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/walrust/walrust/vfs/internal/durable"
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
	path := lockPath(dbPath)
	// Each retry means another process removed the file between our open
	// and our lock (see release); a few are plenty.
	for range 8 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, durable.Mode)
		switch {
		case errors.Is(err, fs.ErrPermission):
			return nil, fmt.Errorf("open lock file: %w (a replica's directory, %s, must be writable by this user: its lock, state and log files live beside it)", err, filepath.Dir(dbPath))
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("open lock file: %w (the directory %s does not exist; create it first)", err, filepath.Dir(dbPath))
		case err != nil:
			return nil, fmt.Errorf("open lock file: %w", err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, ErrFollowed
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		// The lock counts only while the path still names the file we
		// locked: a process that gave up a replica it never made removes
		// the lock file (release), and one that opened the file before
		// the removal and locked it after would otherwise lead on a file
		// that the next process, creating a new one, cannot see.
		held, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if now, err := os.Stat(path); err == nil && os.SameFile(held, now) {
			// Who leads, for `walrust status --local`; nothing depends
			// on it, so it is written without a sync.
			// Its modification time says when the replica was last
			// confirmed current (markCurrent): not yet, by this leader.
			if err := f.Truncate(0); err == nil {
				f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
			}
			os.Chtimes(path, time.Unix(0, 0), time.Unix(0, 0))
			return &leaderLock{f: f}, nil
		}
		f.Close()
	}
	return nil, fmt.Errorf("lock %s: the file keeps being removed by other processes", path)
}

// release drops the lock. With remove, it removes the lock file first,
// while still holding it: a process that then locks the removed file finds
// the path no longer names it (acquireLeader), so the removal never lets
// two processes lead at once.
func (l *leaderLock) release(remove bool) {
	if l != nil && l.f != nil {
		if remove {
			os.Remove(l.f.Name())
		}
		l.f.Close() // closing the description drops the flock
		l.f = nil
	}
}

// markCurrent records, as the lock file's modification time, when the
// leader last confirmed the replica current (see Replica.MarkCurrent).
func (l *leaderLock) markCurrent(t time.Time) error {
	if l == nil || l.f == nil {
		return nil
	}
	return os.Chtimes(l.f.Name(), t, t)
}
