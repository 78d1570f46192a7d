package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// A replica is written by walrust alone. A base file that something else
// wrote (a plain sqlite3 without mode=ro) serves rows the primary never
// had; walrust keeps a copy of it beside the replica, never deletes it,
// and goes back to the primary's content:
//   - at open, the file is moved aside and the replica bootstraps again
//     (startOverModified);
//   - while following, a fold finds the file's header changed and refuses
//     (ErrModified), the follower re-bootstraps, and the fold that installs
//     the snapshot copies the file aside before it rewrites it
//     (checkUnmodified).

// ErrModified means the base file was changed by something other than
// walrust.
var ErrModified = errors.New("the replica was changed by something other than walrust")

// startOverModified moves aside a base file that something other than
// walrust wrote, with the journal, WAL and shared-memory files a writer may
// have left beside it (a hot journal left behind would roll the next file
// back), and opens the replica as new: the follower bootstraps it again
// from the store. Nothing is deleted. The change counter goes on from the
// old state's, so that no reader mistakes the new file for one it cached.
func startOverModified(path string, st *State, why error) (*Replica, error) {
	aside := asideName(path)
	if err := os.Rename(path, aside); err != nil {
		return nil, fmt.Errorf("%w; moving it aside failed: %w", why, err)
	}
	for _, ext := range []string{"-journal", "-wal", "-shm"} {
		if err := os.Rename(path+ext, aside+ext); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w; moving its %s aside failed: %w", why, ext, err)
		}
	}
	r := newReplica(path)
	r.counter = st.Counter
	r.state = State{Origin: st.Origin}
	r.openModified = fmt.Errorf("%w: moved to %s", why, aside)
	return r, r.clearLog()
}

// baseHeader is what this process knows the base file's header says: the
// change counter and page count that it last checked or wrote. Unknown
// after an open that found a fold to redo (a crash may have written page 1
// and not the state): the next fold learns it.
type baseHeader struct {
	known           bool
	counter, commit uint32
	// marked: page 1 carries foldingMagic, left by a fold of this process
	// that failed part way (learnHeader).
	marked bool
}

// learnHeader records what a fold that failed part way left in the base
// file's header, so that the next fold knows it for its own. The caller
// holds the exclusive lock, so nothing else wrote it meanwhile. A header
// that cannot be read is unknown, as after a crash: the next fold does not
// check it.
func (r *Replica) learnHeader() {
	h := baseHeader{}
	if magic, counter, commit, err := readBaseHeader(r.base.f); err == nil {
		h = baseHeader{
			known:   magic == sqliteMagic || magic == foldingMagic,
			counter: counter, commit: commit,
			marked: magic == foldingMagic,
		}
	}
	r.mu.Lock()
	r.baseHdr = h
	r.mu.Unlock()
}

// checkUnmodified compares the base file's header with what this process
// last checked or wrote (baseHeader). A fold that installs a snapshot
// rewrites the whole file: it copies a changed file aside first and goes
// on; any other fold refuses with ErrModified. The caller holds the
// exclusive lock.
func (r *Replica) checkUnmodified(rewritesAll bool) error {
	if !r.baseHdr.known {
		return nil
	}
	magic, counter, commit, err := readBaseHeader(r.base.f)
	if err != nil {
		return err
	}
	want := r.baseHdr
	wantMagic := sqliteMagic
	if want.marked {
		wantMagic = foldingMagic
	}
	if magic == wantMagic && counter == want.counter && commit == want.commit {
		return nil
	}
	what := fmt.Sprintf("its header says change counter %d and %d pages, walrust left %d and %d", counter, commit, want.counter, want.commit)
	if !rewritesAll {
		return fmt.Errorf("%s: %s: %w", r.path, what, ErrModified)
	}
	aside := asideName(r.path)
	if err := copyFile(r.base.f, aside); err != nil {
		return fmt.Errorf("%s: %s (%w); copying it aside failed: %w", r.path, what, ErrModified, err)
	}
	r.mu.Lock()
	r.copiedAside = aside
	r.mu.Unlock()
	return nil
}

// readBaseHeader reads what checkUnmodified compares of the base file's
// header: its magic, change counter and size in pages.
func readBaseHeader(f *os.File) (magic string, counter, commit uint32, err error) {
	var hdr [100]byte // the whole header: a shorter file is no database
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return "", 0, 0, fmt.Errorf("read base header: %w", err)
	}
	return string(hdr[:16]), binary.BigEndian.Uint32(hdr[24:]), binary.BigEndian.Uint32(hdr[28:]), nil
}

// asideName is where a changed base file is kept.
func asideName(path string) string {
	return fmt.Sprintf("%s.modified-%s", path, time.Now().UTC().Format("20060102T150405.000Z"))
}

func copyFile(src *os.File, dst string) error {
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, io.NewSectionReader(src, 0, 1<<62)); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// CopiedAside is where the last fold kept a copy of a base file something
// else had changed, and clears it; "" when it did not.
func (r *Replica) CopiedAside() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.copiedAside
	r.copiedAside = ""
	return p
}
