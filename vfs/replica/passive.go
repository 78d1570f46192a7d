package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// ErrFoldInterrupted means the process that followed this replica died in
// the middle of a fold: the base file is a mix of two TXIDs, marked as such
// on page 1, until another process takes over and folds again.
var ErrFoldInterrupted = errors.New("the process that followed this replica stopped in the middle of a fold; waiting for another to take over")

// Passive reads a replica that another process follows: the base file
// alone, under SQLite's shared lock for the length of each read
// transaction, exactly like a plain sqlite3 reader. It sees the follower's
// folds as they happen, one whole TXID at a time.
type Passive struct {
	path   string
	source string // the store the follower follows, per the state file
	b      *baseFile
	locks  versionLocks // what its versions' reads take; no one here writes (another process folds)
}

// OpenPassive opens a replica that exists (it has a state file and a base
// file) for passive reading. Like Open, it refuses a source other than the
// state file's ("" accepts the state file's).
func OpenPassive(path, source string) (*Passive, error) {
	st, err := ReadState(path)
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
	return &Passive{path: path, source: st.Source, b: b}, nil
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
	pageSize := dbPageSize(hdr[:])
	st, err := ReadState(p.path)
	if err != nil || st == nil {
		return nil, fmt.Errorf("read state of %s: %v", p.path, err)
	}
	if binary.BigEndian.Uint32(hdr[24:]) != st.Counter {
		return nil, ErrFoldInterrupted
	}
	return &Version{
		locks: &p.locks, TXID: st.TXID, PageSize: pageSize, Commit: binary.BigEndian.Uint32(hdr[28:]),
		Timestamp: st.Timestamp, Counter: binary.BigEndian.Uint32(hdr[24:]), base: p.b,
	}, nil
}

// Close releases the base file.
func (p *Passive) Close() { p.b.release() }
