package replica

import (
	"fmt"
	"os"
	"sync"
)

// baseFile is the local database file that chains of versions rest on. It
// is opened once and never replaced while the replica is open: a
// re-bootstrap is folded into it like any other version, so that other
// processes holding the file open see it change under SQLite's locks.
type baseFile struct {
	path string
	f    *os.File // read-write: folds write through it, and its locks are SQLite's
	fd   int      // f.s descriptor, for readers outside Go (Direct); -1 if unknown
	lock *fileLock
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
