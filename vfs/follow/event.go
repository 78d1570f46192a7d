package follow

import (
	"io"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/store"
)

// EventKind says what a follower just did.
type EventKind int

const (
	EventStart             EventKind = iota // the follower starts; TXID is the replica's, 0 if it has none; Err why its file was moved aside, if it was
	EventBootstrapStart                     // downloading a snapshot (File, Bytes)
	EventProgress                           // snapshot download progress (File, Done, Bytes = total or 0)
	EventSnapshotInstalled                  // a snapshot is the new base (File, Bytes, Pages, TXID, Took)
	EventApplied                            // one LTX file applied (File, Bytes, Pages, TXID, Took)
	EventRebootstrap                        // no chain reaches the store's head; File is the snapshot
	EventRejected                           // a file failed verification (File, Err)
	EventError                              // a poll failed (Err); the follower retries
)

// Event is one thing a follower did, for progress output.
type Event struct {
	Kind  EventKind
	File  store.FileInfo
	Bytes int64 // the file's size, when the store said
	Done  int64 // bytes read so far (EventProgress)
	Pages int
	TXID  ltx.TXID
	Took  time.Duration
	Err   error
}

func (f *Follower) emit(e Event) {
	if f.onEvent != nil {
		f.onEvent(e)
	}
}

// progressEvery is how often a long download reports progress.
const progressEvery = 500 * time.Millisecond

// progressReader reports the bytes read from a snapshot download.
type progressReader struct {
	r    io.Reader
	fi   store.FileInfo
	emit func(Event)
	done int64
	last time.Time
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	if now := time.Now(); now.Sub(p.last) >= progressEvery || err == io.EOF {
		p.last = now
		p.emit(Event{Kind: EventProgress, File: p.fi, Done: p.done, Bytes: p.fi.Size})
	}
	return n, err
}
