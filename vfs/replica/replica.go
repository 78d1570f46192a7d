// Package replica keeps a local SQLite database file patched from LTX files
// handed to it (it knows no store; vfs/follow feeds it):
// it bootstraps it from a snapshot, applies verified files as page versions,
// serves each reader one consistent version, and folds versions into the
// file when no reader needs the older images.
//
// Mutex rules. Locks nest only in this order, each taken only while holding
// none below it:
//
//	Replica.mu      the versions (head, root, chain indexes, abandoned):
//	                readers hold it for reading across each page read of a
//	                local file; the follower for writing only to publish,
//	                to record a fold or a merge, and to expire a version
//	Gate.mu         the gate's openings and closings (gate.go)
//	Replica.revokeMu  every Version's revokers (expire.go)
//	bases.mu        the process's shared base files (base.go)
//
// fileLock.mu (SQLite's locks on one base file, lock.go) is never held
// with another. None is held across a network wait: the replica never
// reads a store (its writer, vfs/follow, downloads with no lock of it
// held), and a fold waits for other processes' readers at most
// foldLockWait.
package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// ErrNoReplica means the local file has not been bootstrapped yet.
var ErrNoReplica = errors.New("replica not bootstrapped yet")

// Replica is the local side of one replicated database: the base file at
// <path>, the state file at <path>-replica-state, and applied versions not
// yet folded, in the log directory <path>-replica-log.
type Replica struct {
	path   string
	logDir string
	log    segmentLog // the log files segments are appended to

	// versionLocks.mu guards the version chain: head, root, state, base,
	// abandoned, bits, and every Version's chain bookkeeping.
	versionLocks
	head  *Version // newest version; nil until bootstrapped
	root  *Version // the version the base file holds
	state State    // what the state file says
	base  *baseFile

	// abandoned are versions of a chain that a re-bootstrap replaced. Their
	// readers read the base file, so no fold may write it until they are all
	// unpinned.
	abandoned []*Version

	// bits are the page bits of every chain made so far (see pageBits),
	// unmapped at Close, when no reader can hold them.
	bits []*pageBits

	counter uint32 // last change counter handed out
	seq     uint64 // last Version.seq handed out

	leader *leaderLock // this process is the one that writes the replica

	// openFoldErr is why the fold at Open failed, if it did, for the
	// follower to report: Open serves the log instead of failing.
	openFoldErr error
	// openModified says why Open moved the base file aside, if it did
	// (startOverModified), for the follower to report.
	openModified error
	// copiedAside is where a fold kept a changed base file, until the
	// follower reports it (CopiedAside). Guarded by mu.
	copiedAside string
	// baseHdr is what the base file's header said when this process last
	// checked or wrote it; only the fold reads and writes it.
	baseHdr baseHeader
	// retired says Promote made the file a plain database: Close removes
	// the lock file too. Guarded by mu.
	retired bool
	// gate, if attached, lets transactions begin outside Go (gate.go).
	// Guarded by mu.
	gate *Gate
}

// Open opens the replica at path for source, to follow it. A local file
// that exists with no state file is refused (it is not ours to overwrite),
// and so is a state file that names another source. A missing file is
// fine: Bootstrap fills it. Only one process at a time may follow a
// replica: in the others Open returns ErrFollowed (see OpenPassive).
func Open(path, source string) (*Replica, error) {
	return OpenOrigin(path, Origin{Source: source})
}

// OpenOrigin is Open for a replica made, if it is new, with origin's
// store options as well as its source; they go into its state file. A
// replica made already keeps the origin it was made with (Origin).
func OpenOrigin(path string, origin Origin) (*Replica, error) {
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	// Before the lock file is created: it would stay beside a file that is
	// not ours; and before waiting on another process's lock, so that a
	// source other than the replica's is refused while another process
	// follows it too. open checks both again, under the lock.
	if err := refuseForeign(path, origin.Source); err != nil {
		return nil, err
	}
	leader, err := acquireLeader(path)
	if err != nil {
		return nil, err
	}
	r, err := open(path, origin)
	if err != nil {
		leader.release(false)
		return nil, err
	}
	r.leader = leader
	return r, nil
}

// newReplica is a replica of the file at path with nothing loaded yet.
func newReplica(path string) *Replica {
	r := &Replica{path: path, logDir: path + "-replica-log"}
	r.log.dir = r.logDir
	return r
}

func open(path string, origin Origin) (*Replica, error) {
	source := origin.Source
	r := newReplica(path)
	st, err := ReadState(path)
	if err != nil {
		return nil, err
	}
	exists, err := fileExists(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	switch {
	case st == nil && exists:
		return nil, errForeign(path)
	case st != nil && source != "" && st.Source != source:
		return nil, otherSource(path, st.Source, source)
	}
	if err := os.MkdirAll(r.logDir, 0o755); err != nil {
		return nil, fmt.Errorf("create log dir: %w", err)
	}
	if st == nil {
		r.state.Origin = origin
		return r, r.clearLog()
	}
	r.state = *st
	r.counter = st.Counter
	if st.Staged != nil && (!exists || st.TXID == 0) {
		// A first bootstrap was interrupted: finish or restart it.
		if err := r.finishFirstInstall(); err != nil {
			return nil, fmt.Errorf("finish interrupted bootstrap: %w", err)
		}
		if exists, err = fileExists(path); err != nil {
			return nil, err
		}
	}
	if !exists {
		// A crash during the first bootstrap, before its snapshot was
		// staged: start again from a snapshot.
		r.state = State{Origin: st.Origin}
		return r, r.clearLog()
	}
	if err := r.loadBase(); err != nil {
		return nil, err
	}
	// A lazy bootstrap's checkpoint that a crash left after its install.
	if err := r.DiscardHydration(); err != nil {
		return nil, err
	}
	if err := r.replayLog(); err != nil {
		return nil, err
	}
	// With every version folded, the file is exactly what the state says
	// (with some still to fold, a fold interrupted by a crash may have
	// left it ahead: the next fold repairs that).
	if r.head == r.root {
		if err := checkBase(r.base.f, &r.state, path); err != nil {
			r.Close()
			if !errors.Is(err, ErrModified) {
				return nil, err
			}
			return startOverModified(path, st, err)
		}
		r.baseHdr = baseHeader{known: true, counter: r.state.Counter, commit: r.state.Commit}
	}
	return r, nil
}

// refuseForeign refuses a local file that exists without a state file
// (walrust did not make it, so it neither overwrites it nor puts files
// beside it), and a replica of another source than the one asked for.
func refuseForeign(path, source string) error {
	st, err := ReadState(path)
	if err != nil {
		return err
	}
	if st != nil {
		if source != "" && st.Source != source {
			return otherSource(path, st.Source, source)
		}
		return nil
	}
	exists, err := fileExists(path)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	if exists {
		return errForeign(path)
	}
	return nil
}

// RefuseForeign refuses a local file at path that walrust did not make (it
// exists without a state file): nothing may be put beside it, not even an
// as_of view's directory.
func RefuseForeign(path string) error { return refuseForeign(path, "") }

func errForeign(path string) error {
	return fmt.Errorf("%s exists but has no %s: it was not made by walrust; refusing to overwrite it (move it away or pick another path)", path, filepath.Base(statePath(path)))
}

// otherSource is the refusal of a source other than the one a replica
// follows, in every role: its data is not that source's.
func otherSource(path, follows, asked string) error {
	return fmt.Errorf("%s follows %s (per %s), not %s: leave the source out (the replica names its own), or remove the replica files to follow another", path, follows, filepath.Base(statePath(path)), asked)
}

func fileExists(path string) (bool, error) {
	_, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// Path is the local database file.
func (r *Replica) Path() string { return r.path }

// OpenFoldErr is why the fold at Open failed, if it did: the replica then
// serves the log, and folds again after the next apply.
func (r *Replica) OpenFoldErr() error { return r.openFoldErr }

// OpenModified says why Open moved the base file aside, and where, if it
// did: something other than walrust wrote it, and the replica starts over
// from the store.
func (r *Replica) OpenModified() error { return r.openModified }

// versionLocks are what a Version needs of the replica it belongs to,
// rather than the whole replica (a passive reader has none).
type versionLocks struct {
	// mu keeps what a reader reads from being closed or rewritten under
	// it: readers hold it for reading across each page read; the follower
	// holds it for writing only to publish a version, record a fold or a
	// merge, or expire a version — short critical sections.
	mu sync.RWMutex
	// revokeMu guards every Version's revokers (see expire.go). Lock
	// order: mu, then revokeMu.
	revokeMu sync.Mutex
}

// Source is the store URL the replica follows. Read it before a follower
// starts: the follower rewrites the state it comes from.
func (r *Replica) Source() string { return r.state.Source }

// Origin is the source the replica follows and the store options it was
// made with (or, for a new replica, is being made with). Read it, like
// Source, before a follower starts.
func (r *Replica) Origin() Origin { return r.state.Origin }

// Head is the newest version, or nil before the first bootstrap.
func (r *Replica) Head() *Version {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.head
}

// Pin returns the newest version, pinned until Unpin: folds leave every page
// it can read in place. ErrNoReplica before the first bootstrap.
func (r *Replica) Pin() (*Version, error) {
	// The read lock makes the pin atomic with a fold choosing what to fold:
	// a fold never folds past a version it saw pinned, and a pin taken after
	// that choice lands on the head, which is never older than the fold.
	r.mu.RLock()
	defer r.mu.RUnlock()
	v := r.head
	if v == nil {
		return nil, ErrNoReplica
	}
	v.pins.Add(1)
	// Transactions that begin while v stays the newest need not call in.
	r.offerGate(v)
	return v, nil
}

// loadBase opens the base file and makes the root version from the state.
func (r *Replica) loadBase() error {
	b, err := openBase(r.path)
	if err != nil {
		return err
	}
	// Hand out counters above whatever page 1 on disk says as well as above
	// the state: a crash mid-fold can leave the file ahead of the state.
	var hdr [4]byte
	if _, err := b.f.ReadAt(hdr[:], 24); err == nil {
		r.counter = max(r.counter, binary.BigEndian.Uint32(hdr[:]))
	}
	s := r.state
	root := &Version{
		locks: &r.versionLocks, TXID: s.TXID, PageSize: s.PageSize, Commit: s.Commit, Timestamp: s.Timestamp,
		Checksum: s.Checksum, Page1Checksum: s.Page1Checksum, Counter: s.Counter,
		base: b, chain: r.newChain(),
	}
	root.chain.root = root
	// Under the lock: after a first install, readers (Head, Pin) may be
	// looking already.
	r.mu.Lock()
	r.gate.close()
	r.base, r.root, r.head = b, root, root
	r.mu.Unlock()
	return nil
}

// replayLog turns what a previous run applied but did not fold back into
// versions — a staged snapshot, then segments in TXID order — and folds
// them. A segment that does not continue the chain, or fails its CRC, ends
// the replay: it and everything after it are removed and will be downloaded
// again.
func (r *Replica) replayLog() error {
	if s := r.state.Staged; s != nil {
		seg, err := openStaged(s)
		if err != nil {
			// The state names a staged snapshot that is gone: forget it,
			// the follower will find the snapshot in the store again.
			r.state.Staged = nil
			if err := writeState(r.path, &r.state); err != nil {
				return err
			}
		} else {
			r.publish(r.newVersion(seg))
		}
	}
	if err := r.removeUnnamedStaged(); err != nil {
		return err
	}
	if err := r.replaySegments(); err != nil {
		return err
	}
	// A fold that fails here (a full disk) leaves the file as it was, or
	// marked as mid-fold: either way the replica serves its versions from
	// the log in this process, and the follower folds again after each
	// poll. So the open goes on; the follower reports why.
	if _, err := r.Fold(); err != nil {
		r.openFoldErr = err
	}
	return nil
}

// clearLog removes every segment, and every staged snapshot the state does
// not name.
func (r *Replica) clearLog() error {
	r.log.forget()
	entries, err := os.ReadDir(r.logDir)
	if err != nil {
		return fmt.Errorf("clear log: %w", err)
	}
	for _, e := range entries {
		p := filepath.Join(r.logDir, e.Name())
		if r.state.Staged != nil && p == r.state.Staged.Path || strings.HasPrefix(e.Name(), hydratePrefix) && !strings.HasSuffix(p, ".tmp") {
			continue // a lazy bootstrap's files are the follower's to resume or discard
		}
		if strings.HasSuffix(p, segmentExt) || strings.HasSuffix(p, stagedExt) || strings.HasSuffix(p, ".tmp") {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("clear log: %w", err)
			}
		}
	}
	return nil
}

// removeUnnamedStaged removes the staged snapshots the state does not name:
// a crash after a snapshot was staged and before Install recorded it leaves
// one behind, as big as the database, that nothing would ever remove.
func (r *Replica) removeUnnamedStaged() error {
	entries, err := os.ReadDir(r.logDir)
	if err != nil {
		return fmt.Errorf("read log dir: %w", err)
	}
	for _, e := range entries {
		p := filepath.Join(r.logDir, e.Name())
		if !strings.HasSuffix(p, stagedExt) || (r.state.Staged != nil && p == r.state.Staged.Path) {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove unused staged snapshot: %w", err)
		}
	}
	return nil
}

// newVersion makes the version a segment produces on top of the head (a
// staged snapshot starts a chain of its own). Only the follower calls it,
// so reading r.head needs no lock.
func (r *Replica) newVersion(seg *segment) *Version {
	m := seg.meta
	v := &Version{
		locks: &r.versionLocks, TXID: m.MaxTXID, PageSize: m.PageSize, Commit: m.Commit,
		Timestamp: time.UnixMilli(m.Timestamp).UTC(), Checksum: m.Checksum,
		Page1Checksum: m.Page1Checksum, Counter: r.nextCounter(),
		seg: seg, parent: r.head, base: r.base,
	}
	if seg.full {
		v.parent = nil
	}
	return v
}

func (r *Replica) nextCounter() uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counter++
	return r.counter
}

// publish makes v the head: transactions that start from now on see it. A
// version that starts a chain of its own (a staged snapshot) abandons the
// chain it replaces.
func (r *Replica) publish(v *Version) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v.parent == nil && r.head != nil {
		for x := r.head; x != nil; x = x.parent {
			r.abandoned = append(r.abandoned, x)
			if x.seg == nil || x.folded {
				break
			}
		}
	}
	// The gate's version is no longer the newest: transactions that
	// begin from here on call in, and pin v.
	r.gate.close()
	r.seq++
	v.seq = r.seq
	if v.parent == nil {
		v.chain = r.newChain()
		v.chain.full = v
	} else {
		v.chain = v.parent.chain
		v.chain.add(v)
	}
	r.head = v
}

// newChain is the page index of a new chain of versions. The caller holds
// r.mu, or is the only user of r.
func (r *Replica) newChain() *chainIndex {
	b := &pageBits{}
	r.bits = append(r.bits, b)
	return newChainIndex(b)
}

// Close releases the replica's files. Readers must have unpinned. A
// replica that never got a version and has no state file leaves nothing
// behind: a failed first start is as if it never happened.
func (r *Replica) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	unmade := false
	if r.base == nil {
		if st, _ := ReadState(r.path); st == nil {
			unmade = true
			os.Remove(r.logDir) // only if empty: never another's files
		}
	}
	for v := r.head; v != nil && v.seg != nil && !v.folded; v = v.parent {
		v.seg.close()
	}
	for _, v := range r.abandoned {
		if v.seg != nil {
			v.seg.close()
		}
	}
	r.abandoned = nil
	r.log.retire()
	r.gate.close()
	r.gate = nil
	if r.base != nil {
		r.base.release()
		r.base = nil
	}
	r.head, r.root = nil, nil
	for _, b := range r.bits {
		b.release()
	}
	r.bits = nil
	r.leader.release(unmade || r.retired)
	r.leader = nil
	return nil
}
