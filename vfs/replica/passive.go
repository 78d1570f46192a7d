package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/walrust/walrust/vfs/internal/durable"
	"golang.org/x/sys/unix"
)

// ErrFollowed means another process follows this replica: it holds the
// replica's lock file. This process can still read the replica (Passive)
// and take over when that process exits.
var ErrFollowed = errors.New("another process follows this replica")

// ErrFoldInterrupted means the process that followed this replica died in
// the middle of a fold: the base file is a mix of two TXIDs, marked as such
// on page 1, until another process takes over and folds again.
var ErrFoldInterrupted = errors.New("the process that followed this replica stopped in the middle of a fold; waiting for another to take over")

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

// bases shares one baseFile per database file in this process, so that
// every reader and the follower lock through one descriptor (see fileLock).
var bases = struct {
	mu sync.Mutex
	m  map[string]*sharedBase
}{m: make(map[string]*sharedBase)}

type sharedBase struct {
	b    *baseFile
	refs int
}

func openBase(path string) (*baseFile, error) {
	bases.mu.Lock()
	defer bases.mu.Unlock()
	if s, ok := bases.m[path]; ok {
		s.refs++
		return s.b, nil
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open base file: %w", err)
	}
	b := &baseFile{f: f, path: path, fd: -1}
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { b.fd = int(fd) })
	}
	b.lock = newFileLock(f)
	bases.m[path] = &sharedBase{b: b, refs: 1}
	return b, nil
}

// release closes the descriptor when its last user is done.
func (b *baseFile) release() {
	bases.mu.Lock()
	defer bases.mu.Unlock()
	s, ok := bases.m[b.path]
	if !ok || s.b != b {
		return
	}
	if s.refs--; s.refs == 0 {
		delete(bases.m, b.path)
		b.f.Close()
	}
}

// Passive reads a replica that another process follows: the base file
// alone, under SQLite's shared lock for the length of each read
// transaction, exactly like a plain sqlite3 reader. It sees the follower's
// folds as they happen, one whole TXID at a time.
type Passive struct {
	path   string
	source string // the store the follower follows, per the state file
	b      *baseFile
	r      *Replica // only for its mutex: Version.ReadAt takes it
}

// OpenPassive opens a replica that exists (it has a state file and a base
// file) for passive reading. Like Open, it refuses a source other than the
// state file's ("" accepts the state file's).
func OpenPassive(path, source string) (*Passive, error) {
	st, err := readState(path)
	if err != nil {
		return nil, err
	}
	if st != nil && source != "" && st.Source != source {
		return nil, otherSource(path, st.Source, source)
	}
	if st == nil || st.TXID == 0 {
		return nil, ErrNoReplica
	}
	b, err := openBase(path)
	if err != nil {
		return nil, err
	}
	return &Passive{path: path, source: st.Source, b: b, r: &Replica{path: path}}, nil
}

// Source is the store URL the replica follows.
func (p *Passive) Source() string { return p.source }

// passiveLockWait bounds how long a read transaction waits for a fold in
// another process to finish.
const passiveLockWait = 5 * time.Second

// Begin starts a read transaction: it takes the shared lock and returns the
// version the file holds. End must follow.
func (p *Passive) Begin() (*Version, error) {
	if err := p.b.lock.rlock(passiveLockWait); err != nil {
		return nil, fmt.Errorf("read lock %s: %w", p.path, err)
	}
	v, err := p.current()
	if err != nil {
		p.b.lock.runlock()
		return nil, err
	}
	return v, nil
}

// End ends a read transaction.
func (p *Passive) End() error { return p.b.lock.runlock() }

// current describes the file as it is: its page 1 already carries the
// served header, and the state file, written under the same lock as the
// fold, names its TXID. A fold that died before it wrote the state leaves
// page 1 marked (foldingMagic: the file is torn), or carrying a counter the
// state does not (the file is whole, at a TXID the state does not name):
// both are ErrFoldInterrupted.
func (p *Passive) current() (*Version, error) {
	var hdr [100]byte
	if _, err := p.b.f.ReadAt(hdr[:], 0); err != nil {
		return nil, fmt.Errorf("read header of %s: %w", p.path, err)
	}
	if string(hdr[:16]) != sqliteMagic {
		return nil, ErrFoldInterrupted
	}
	pageSize := uint32(binary.BigEndian.Uint16(hdr[16:]))
	if pageSize == 1 {
		pageSize = 65536
	}
	st, err := readState(p.path)
	if err != nil || st == nil {
		return nil, fmt.Errorf("read state of %s: %v", p.path, err)
	}
	if binary.BigEndian.Uint32(hdr[24:]) != st.Counter {
		return nil, ErrFoldInterrupted
	}
	return &Version{
		r: p.r, TXID: st.TXID, PageSize: pageSize, Commit: binary.BigEndian.Uint32(hdr[28:]),
		Timestamp: st.Timestamp, Counter: binary.BigEndian.Uint32(hdr[24:]), base: p.b,
	}, nil
}

// Close releases the base file.
func (p *Passive) Close() { p.b.release() }
