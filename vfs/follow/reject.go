package follow

import (
	"time"

	"github.com/walrust/walrust/vfs/store"
)

// chainBroken records a file that cannot follow the head: the store's
// lineage changed under the replica (a new snapshot with another page size
// or other content at the same TXIDs). catchUp then re-bootstraps if the
// newest snapshot leads through it.
func (f *Follower) chainBroken(fi store.FileInfo, err error) {
	head := f.r.Head()
	if c, ok := f.broken[fi.Key()]; ok && c != head.Counter {
		f.reject(fi, err) // it follows neither the old chain nor the new one
		return
	}
	if f.broken == nil {
		f.broken = make(map[store.FileKey]uint32)
	}
	f.broken[fi.Key()] = head.Counter
	f.log.Warn("LTX file does not continue the replica; looking for a snapshot of the new lineage", "file", fi.String(), "err", err)
}

// badFile is a rejected file: why, and the ModTime of the copy that failed.
type badFile struct {
	err     error
	modTime time.Time
}

// rejected says why fi was rejected, or nil. A listing that shows another
// ModTime than the copy that failed shows a copy written since, with the
// same name and size (a producer that wrote the file again, a store wiped
// and refilled by a new lineage): that one is tried.
func (f *Follower) rejected(fi store.FileInfo) error {
	b, ok := f.bad[fi.Key()]
	if !ok || (!b.modTime.IsZero() && !fi.ModTime.IsZero() && !b.modTime.Equal(fi.ModTime)) {
		return nil
	}
	return b.err
}

func (f *Follower) reject(fi store.FileInfo, err error) {
	if f.rejected(fi) != nil {
		return
	}
	f.bad[fi.Key()] = badFile{err: err, modTime: fi.ModTime}
	f.log.Error("rejected LTX file; serving the last good state", "file", fi.String(), "err", err)
	f.emit(Event{Kind: EventRejected, File: fi, Err: err})
}
