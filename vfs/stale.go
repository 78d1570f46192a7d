package vfs

import (
	"fmt"
	"time"

	"github.com/walrust/walrust/vfs/replica"
)

// A staleness bound (max_lag=): a read transaction that would start while
// the replica was last confirmed current longer ago than the bound fails,
// and reads succeed again as soon as a poll confirms it current. A VFS can
// give SQLite only a result code, so the application sees "disk I/O error"
// (SQLITE_IOERR); the log line says the replica is stale, since when and
// why, and walrust_lag() and walrust_status() tell the same beforehand.

// staleLogEvery bounds how often refused transactions of one replica are
// logged: once when they start, then with a count.
const staleLogEvery = 10 * time.Second

// staleness says why a read transaction may not start under maxLag, or ""
// when it may. An as_of view is as old as it was asked to be: never stale.
func (s *shared) staleness(maxLag time.Duration) string {
	if s.isView() {
		return ""
	}
	s.mu.Lock()
	h, seen := s.lead, s.seenCurrent
	s.mu.Unlock()
	var current time.Time
	var why string
	if h != nil {
		current, why = h.Freshness()
	} else {
		// Another process follows: it records when it last confirmed the
		// replica current (Replica.MarkCurrent). A time read here before
		// is no later than the newest (the replica was current then, and
		// has only moved on), so while it is within the bound the
		// transaction may start without reading the files again.
		if !seen.IsZero() && time.Since(seen) <= maxLag {
			return ""
		}
		l, err := replica.Inspect(s.path)
		if err != nil {
			return fmt.Sprintf("the replica's freshness is unknown: %v", err)
		}
		current = l.KnownCurrent()
		// Only a time already past is kept: a commit time (the primary's
		// clock) may be ahead of this machine's, and kept, it would
		// outlive every later confirmation for the whole skew.
		s.mu.Lock()
		if current.After(s.seenCurrent) && !current.After(time.Now()) {
			s.seenCurrent = current
		}
		s.mu.Unlock()
		why = "see the status of the process that follows it (" + fmt.Sprint(l.Follower) + ")"
	}
	lag := time.Since(current)
	if current.IsZero() || lag <= maxLag {
		return ""
	}
	if why == "" {
		why = "none: polls succeed but have not reached the store's head"
	}
	return fmt.Sprintf("the replica is stale: last confirmed current %s ago (at %s), past max_lag %s; last poll error: %s",
		lag.Round(time.Millisecond), current.UTC().Format(time.RFC3339Nano), maxLag, why)
}

// refuseStale logs a transaction refused for staleness, at most every
// staleLogEvery per replica.
func (s *shared) refuseStale(why string) {
	s.mu.Lock()
	s.staleRefused++
	n := s.staleRefused
	log := time.Since(s.staleLogged) >= staleLogEvery
	if log {
		s.staleLogged, s.staleRefused = time.Now(), 0
	}
	s.mu.Unlock()
	if log {
		logger.Error("read transaction refused", "db", s.path, "err", why, "refused", n)
	}
}
