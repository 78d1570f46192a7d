package replica

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// SQLite's lock bytes (os_unix.c). A database file is locked by fcntl
// record locks on bytes past the 1 GiB mark, which no page ever uses:
// readers hold a read lock on the shared range; a writer takes RESERVED,
// then PENDING (which stops new readers), then a write lock on the whole
// shared range (which waits for current readers to leave).
const (
	pendingByte  = 0x40000000
	reservedByte = pendingByte + 1
	sharedFirst  = pendingByte + 2
	sharedSize   = 510
)

// errBusy means another process holds a conflicting lock.
var errBusy = errors.New("database file is locked by another process")

// fileLock takes SQLite's locks on the base file, so that a fold excludes
// plain sqlite3 readers in other processes exactly as a SQLite writer would,
// and counts this process's own shared holders.
//
// POSIX record locks belong to the process, not to a descriptor: locks this
// process takes never conflict with each other, and closing any descriptor
// of the file drops all of them. So every lock goes through the one
// descriptor of the baseFile (never closed while a lock is held), and
// in-process readers are counted here, since the kernel would let a fold's
// write lock merge silently with their read locks.
type fileLock struct {
	f *os.File

	mu        sync.Mutex
	cond      *sync.Cond
	readers   int  // in-process holders of the shared lock
	exclusive bool // a fold holds the write lock
}

func newFileLock(f *os.File) *fileLock {
	l := &fileLock{f: f}
	l.cond = sync.NewCond(&l.mu)
	return l
}

func (l *fileLock) set(typ int16, start, length int64) error {
	lk := unix.Flock_t{Type: typ, Whence: io.SeekStart, Start: start, Len: length}
	err := unix.FcntlFlock(l.f.Fd(), unix.F_SETLK, &lk)
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
		return errBusy
	} else if err != nil {
		return fmt.Errorf("fcntl lock: %w", err)
	}
	return nil
}

// tryExclusive takes the locks a SQLite writer needs before it writes the
// file, waiting up to wait for other processes' readers to finish. On
// failure nothing is held and it returns errBusy: the caller tries later,
// it never waits on readers for long.
func (l *fileLock) tryExclusive(wait time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.readers > 0 || l.exclusive {
		return errBusy
	}
	if err := l.set(unix.F_WRLCK, reservedByte, 1); err != nil {
		return err
	}
	// PENDING first, so that no new reader starts while we wait for the
	// current ones to leave the shared range.
	if err := l.set(unix.F_WRLCK, pendingByte, 1); err != nil {
		l.set(unix.F_UNLCK, reservedByte, 1)
		return err
	}
	deadline := time.Now().Add(wait)
	for {
		err := l.set(unix.F_WRLCK, sharedFirst, sharedSize)
		if err == nil {
			break
		}
		if err != errBusy || time.Now().After(deadline) {
			l.set(unix.F_UNLCK, pendingByte, 2) // PENDING and RESERVED
			return err
		}
		time.Sleep(time.Millisecond)
	}
	l.exclusive = true
	return nil
}

// unlockExclusive drops every lock tryExclusive took.
func (l *fileLock) unlockExclusive() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.exclusive = false
	l.cond.Broadcast()
	return l.set(unix.F_UNLCK, pendingByte, 2+sharedSize)
}

// rlock takes a reader's shared lock, as SQLite does at the start of a read
// transaction: a read lock on PENDING (which fails while a writer is
// about to write), then on the shared range, then PENDING is dropped. It
// retries for up to wait while a fold holds the file.
func (l *fileLock) rlock(wait time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	deadline := time.Now().Add(wait)
	for {
		for l.exclusive { // our own fold: the kernel would not stop us
			l.cond.Wait()
		}
		if l.readers > 0 { // the process already holds the shared range
			l.readers++
			return nil
		}
		err := l.set(unix.F_RDLCK, pendingByte, 1)
		if err == nil {
			err = l.set(unix.F_RDLCK, sharedFirst, sharedSize)
			l.set(unix.F_UNLCK, pendingByte, 1)
			if err == nil {
				l.readers++
				return nil
			}
		}
		if err != errBusy || time.Now().After(deadline) {
			return err
		}
		l.mu.Unlock()
		time.Sleep(time.Millisecond)
		l.mu.Lock()
	}
}

// runlock drops a reader's shared lock; the process's last reader releases
// the range.
func (l *fileLock) runlock() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.readers--
	if l.readers > 0 {
		return nil
	}
	l.cond.Broadcast()
	return l.set(unix.F_UNLCK, sharedFirst, sharedSize)
}
