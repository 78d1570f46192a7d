package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/superfly/ltx"
)

// MarkCurrent records that the replica was confirmed current at t: the
// start of a poll that left it at the store's head. It is the lock file's
// modification time (a metadata write, no sync), so that another process
// can tell how fresh the replica is without asking the follower (Inspect).
func (r *Replica) MarkCurrent(t time.Time) error {
	if err := r.leader.markCurrent(t); err != nil {
		return fmt.Errorf("mark %s current: %w", r.path, err)
	}
	return nil
}

// Local is what a replica's files say about it, read without opening it
// or taking any lock: for status commands and health probes.
type Local struct {
	Path      string    `json:"path"`
	Source    string    `json:"source"`
	TXID      ltx.TXID  `json:"txid"`
	Timestamp time.Time `json:"timestamp"` // when the primary committed TXID
	// Current is when a follower last confirmed the replica current;
	// zero if none ever did.
	Current time.Time `json:"confirmed_current,omitzero"` // absent: never
	// Follower is the process that leads (or last led) the replica, and
	// Following whether it still runs.
	Follower  int  `json:"follower_pid"`
	Following bool `json:"following"`
}

// Inspect reads the state of the replica at path, ErrNoReplica when it has
// none. The TXID is the one the base file holds (applied files still in
// the log are newer).
func Inspect(path string) (*Local, error) {
	st, err := ReadState(path)
	if err != nil {
		return nil, err
	}
	if st == nil || st.TXID == 0 {
		return nil, fmt.Errorf("%s: %w", path, ErrNoReplica)
	}
	l := &Local{Path: path, Source: st.Source, TXID: st.TXID, Timestamp: st.Timestamp}
	switch fi, err := os.Stat(lockPath(path)); {
	case err == nil:
		if fi.ModTime().After(time.Unix(0, 0)) { // the epoch: not confirmed by this leader yet
			l.Current = fi.ModTime().UTC()
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("inspect %s: %w", path, err)
	}
	l.Follower, l.Following = inspectLeader(path)
	return l, nil
}

// KnownCurrent is when the replica was last known to hold the primary's
// state: when a follower last confirmed it current, or, before any did,
// when the primary committed its TXID.
func (l *Local) KnownCurrent() time.Time {
	if l.Current.IsZero() {
		return l.Timestamp
	}
	return l.Current
}

// inspectLeader reads which process leads (or last led) the replica at
// path from its lock file, and whether that process still runs.
func inspectLeader(path string) (pid int, running bool) {
	b, err := os.ReadFile(lockPath(path))
	if err != nil {
		return 0, false
	}
	pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	// Signal 0 asks whether the process exists; EPERM: it does, as
	// another user's.
	err = syscall.Kill(pid, 0)
	return pid, err == nil || errors.Is(err, syscall.EPERM)
}

// Hydrating is a first lazy bootstrap under way, or interrupted, as its
// last checkpoint records it (one every 32 MiB of the snapshot): the
// stream writes pages in order, so the checkpoint's next page says how
// many are local for good. Read without opening the replica, like Local.
type Hydrating struct {
	Path string   `json:"path"`
	TXID ltx.TXID `json:"snapshot_txid"` // the snapshot's, what the replica will hold
	// PagesLocal of Pages are in the image for good; Pages is 0 until the
	// first checkpoint after page 1 (the image's size is known, its page
	// size not yet).
	PagesLocal   uint32    `json:"pages_local"`
	Pages        uint32    `json:"pages"`
	Checkpointed time.Time `json:"checkpointed"`
	Follower     int       `json:"follower_pid"`
	Following    bool      `json:"following"`
}

// InspectHydration reports the lazy bootstrap under way at path, nil if
// there is none (Inspect's ErrNoReplica and no hydration: nothing has
// started).
func InspectHydration(path string) (*Hydrating, error) {
	logDir := path + "-replica-log"
	// The directory is read, not globbed: the replica's path is a name,
	// and [ ] * ? in it are no pattern.
	entries, err := os.ReadDir(logDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", logDir, err)
	}
	// A follower keeps one hydration (DiscardHydration removes any other
	// before it starts one); were there more, the newest is the live one.
	var newest string
	var newestAt time.Time
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, hydratePrefix) || !strings.HasSuffix(name, checkpointExt) {
			continue
		}
		ck := filepath.Join(logDir, name)
		if fi, err := os.Stat(ck); err == nil && fi.Mode().IsRegular() && !fi.ModTime().Before(newestAt) {
			newest, newestAt = ck, fi.ModTime()
		}
	}
	if newest == "" {
		return nil, nil
	}
	ck, err := readCheckpoint(newest)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // installed (or discarded) since the listing
	} else if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", newest, err)
	}
	h := &Hydrating{Path: path, TXID: ck.txid, Checkpointed: newestAt.UTC()}
	if ck.next > 0 {
		h.PagesLocal = ck.next - 1
	}
	img, err := os.Stat(strings.TrimSuffix(newest, checkpointExt) + imageExt)
	if ps := headerPageSize(ck.page1Header); err == nil && ps > 0 && img.Size()%ps == 0 && img.Size()/ps <= math.MaxUint32 {
		h.Pages = uint32(img.Size() / ps)
	}
	h.Follower, h.Following = inspectLeader(path)
	return h, nil
}

// dbPageSize is the page size a database header gives: offset 16,
// big-endian, where 1 means 65536.
func dbPageSize(hdr []byte) uint32 {
	ps := uint32(binary.BigEndian.Uint16(hdr[16:18]))
	if ps == 1 {
		ps = 65536
	}
	return ps
}

// headerPageSize is dbPageSize, 0 when the header is short or gives a
// size no database can have.
func headerPageSize(hdr []byte) int64 {
	if len(hdr) < 18 {
		return 0
	}
	ps := int64(dbPageSize(hdr))
	if ps < 512 || ps&(ps-1) != 0 {
		return 0
	}
	return ps
}
