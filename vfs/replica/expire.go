package replica

import (
	"errors"
	"fmt"
)

// A read transaction that stays open keeps every version after it from
// being folded: their segments stay on disk. Merging (merge.go) keeps them
// few, but not small: behind a reader that never ends, a busy primary's
// changes pile up. Past a limit, the reader pays, not the host: the oldest
// pinned version that keeps the fold back expires. Its reads fail from
// then on with ErrExpired — SQLite reports an I/O error, and the
// transaction ends — and the fold goes past it. Only a version the base
// file holds (the root) or one a re-bootstrap replaced can keep the fold
// back once it has run, so those are the ones that expire.
//
// A reader outside Go (the VFS's C layer) may read such a version's pages
// from the base file without calling in. Before the fold writes the file,
// each one is revoked: once Revoke returns, none of its reads is in flight
// and every later one goes through ReadAt, which fails.

// ErrExpired is wrapped by the error a read of an expired version returns.
var ErrExpired = errors.New("read transaction expired")

// Revoker stops one reader outside Go from reading a version directly;
// Revoke returns once no such read is in flight.
type Revoker interface{ Revoke() }

func (l *versionLocks) addRevoker(v *Version, rv Revoker) {
	l.revokeMu.Lock()
	defer l.revokeMu.Unlock()
	if v.revokers == nil {
		v.revokers = make(map[Revoker]struct{})
	}
	v.revokers[rv] = struct{}{}
}

// Undirect ends what Direct(rv) began: the reader no longer reads v
// outside Go. It must come before the reader unpins v.
func (v *Version) Undirect(rv Revoker) {
	if rv == nil {
		return
	}
	v.locks.revokeMu.Lock()
	defer v.locks.revokeMu.Unlock()
	delete(v.revokers, rv)
}

func (v *Version) expiredError() error {
	return fmt.Errorf("%w: %s", ErrExpired, v.expiredWhy)
}

// HeldBytes is what the log directory holds for versions not folded yet:
// their segments and staged snapshots.
func (r *Replica) HeldBytes() int64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var n int64
	for v := r.head; v != nil && v != r.root && v.seg != nil && !v.folded; v = v.parent {
		if v.hyd != nil {
			break // a hydrating snapshot is the replica itself, not held for a reader
		}
		n += v.seg.size()
	}
	for _, v := range r.abandoned {
		if v.seg != nil && !v.folded {
			n += v.seg.size()
		}
	}
	return n
}

// ExpireHeld expires, oldest first, the pinned versions that keep the
// fold from bringing what the log holds under limit, folding after each;
// it returns them. It stops when a fold cannot run for another reason (a
// reader in another process), since expiring more would not help.
func (r *Replica) ExpireHeld(limit int64) ([]*Version, error) {
	var expired []*Version
	for {
		held := r.HeldBytes()
		if held <= limit {
			return expired, nil
		}
		v := r.foldBlocker()
		if v == nil {
			return expired, nil
		}
		r.expire(v, fmt.Sprintf("it began at TXID %s, and the %d bytes of newer pages kept for it passed the limit of %d bytes (max_held); end read transactions sooner, or raise max_held", v.TXID, held, limit))
		expired = append(expired, v)
		if folded, err := r.Fold(); err != nil || !folded {
			return expired, err
		}
	}
}

// foldBlocker is the pinned version that keeps the fold back: one of a
// chain a re-bootstrap replaced, or the root, while newer versions wait.
func (r *Replica) foldBlocker() *Version {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, v := range r.abandoned {
		if r.pinned(v) {
			return v
		}
	}
	if r.root != nil && r.head != r.root && r.pinned(r.root) {
		return r.root
	}
	return nil
}

// expire makes every read of v fail from now on, in Go and outside it.
func (r *Replica) expire(v *Version, why string) {
	// Under the write lock: no ReadAt of v is under way once it is set,
	// and no Direct(v) can begin after it.
	r.mu.Lock()
	v.expiredWhy = why
	v.expired.Store(true)
	r.gate.revoke(v) // its readers at the gate read nothing directly from here on
	r.mu.Unlock()
	// Revoke under revokeMu, so that no reader closes (and frees what
	// Revoke touches) meanwhile.
	r.revokeMu.Lock()
	for rv := range v.revokers {
		rv.Revoke()
	}
	v.revokers = nil
	r.revokeMu.Unlock()
}
