package replica

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
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
	Current time.Time `json:"confirmed_current"`
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
	if b, err := os.ReadFile(lockPath(path)); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			l.Follower = pid
			// Signal 0 asks whether the process exists; EPERM: it does,
			// as another user's.
			err := syscall.Kill(pid, 0)
			l.Following = err == nil || errors.Is(err, syscall.EPERM)
		}
	}
	return l, nil
}
