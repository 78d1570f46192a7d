package vfs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/walrust/walrust/vfs/follow"
	"github.com/walrust/walrust/vfs/replica"
	"github.com/walrust/walrust/vfs/store"
)

// A process either follows a replica (it won the replica's lock file) or
// reads it passively while another process follows it. A passive entry
// keeps trying to take over, so that when the follower exits another
// process starts following within one poll interval.

// startPassive opens the replica for a process that does not follow it. A
// source other than the replica's is refused here as in the follower role:
// the data is not that source's, and no takeover could follow it.
func (s *shared) startPassive() error {
	source := store.Canonical(s.cfg.Source)
	p, err := replica.OpenPassive(s.path, source)
	if err != nil && !errors.Is(err, replica.ErrNoReplica) {
		return err
	}
	s.mu.Lock()
	s.source = source
	if err == nil {
		s.passive, s.source = p, p.Source()
	}
	s.mu.Unlock()
	s.stopWatch, s.watchDone = make(chan struct{}), make(chan struct{})
	logger.Info("another process follows this replica; reading it passively", "db", s.path)
	go s.watch()
	return nil
}

// watch turns a passive entry into the follower as soon as the lock file is
// free, and opens the replica for reading once the follower has made it.
func (s *shared) watch() {
	defer close(s.watchDone)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // ends with the watch at the latest
		select {
		case <-s.stopWatch:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		h, err := follow.Lead(ctx, s.path, s.takeOverConfig(), s.takeOverWait, func(bool) { s.refreshPassive() })
		if ctx.Err() != nil {
			if h != nil {
				h.Close()
			}
			return
		}
		if err == nil {
			s.tookOver(h)
			return
		}
		logger.Warn("cannot take over following", "db", s.path, "err", explainStart(s.path, err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.cfg.Interval):
		}
	}
}

// takeOverConfig follows the store the passive entry reads.
func (s *shared) takeOverConfig() follow.Config {
	c := s.followConfig()
	s.mu.Lock()
	c.Source = s.source
	s.mu.Unlock()
	return c
}

// takeOverWait is how long to wait before trying to take over again: the
// poll interval, or less while an open waits for the first bootstrap.
func (s *shared) takeOverWait() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.passive == nil {
		return min(s.cfg.Interval, 50*time.Millisecond)
	}
	return s.cfg.Interval
}

// refreshPassive opens the replica for reading once the process that
// follows it has made it.
func (s *shared) refreshPassive() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.passive == nil {
		s.openPassiveLocked()
	}
}

// openPassiveLocked opens the replica that another process has now
// bootstrapped, or records (and logs, once) why it cannot. s.mu is held.
func (s *shared) openPassiveLocked() {
	p, err := replica.OpenPassive(s.path, s.source)
	switch {
	case err == nil:
		s.passive, s.passiveErr = p, nil
		if s.source == "" {
			s.source = p.Source()
		}
	case errors.Is(err, replica.ErrNoReplica):
	default:
		if s.passiveErr == nil || s.passiveErr.Error() != err.Error() {
			logger.Warn("cannot read the replica another process follows", "db", s.path, "err", err)
		}
		s.passiveErr = err
	}
}

// tookOver makes the entry the follower.
func (s *shared) tookOver(h *follow.Handle) {
	logger.Info("took over following", "db", s.path, "source", h.Source)
	s.attachGate(h)
	s.mu.Lock()
	p := s.passive
	s.lead, s.passive, s.source = h, nil, h.Source
	s.mu.Unlock()
	if p != nil {
		// Transactions begun passively end on the shared base file, which
		// the replica keeps open.
		p.Close()
	}
}

// waitReady waits until there is a version to read, in either role.
func (s *shared) waitReady(began time.Time, timeout time.Duration) error {
	deadline := began.Add(timeout)
	for {
		s.mu.Lock()
		h, p, perr := s.lead, s.passive, s.passiveErr
		s.mu.Unlock()
		switch {
		case h != nil && h.Existing:
			// Served as it is while the first poll runs.
			return nil
		case h != nil:
			return h.WaitReadyFrom(began, timeout)
		case p != nil:
			return nil
		case perr != nil:
			return perr
		case time.Now().After(deadline):
			return fmt.Errorf("no replica after %s: another process follows %s and has not bootstrapped it yet", timeout, s.path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// begin starts a read transaction in the current role; end must follow.
func (s *shared) begin() (v *replica.Version, end func(), err error) {
	s.mu.Lock()
	h, p := s.lead, s.passive
	s.mu.Unlock()
	switch {
	case h != nil:
		v, err := h.Replica.Pin()
		if err != nil {
			return nil, nil, err
		}
		return v, v.Unpin, nil
	case p != nil:
		v, err := p.Begin()
		if err != nil {
			return nil, nil, err
		}
		return v, func() {
			if err := p.End(); err != nil {
				logger.Error("unlock", "db", s.path, "err", err)
			}
		}, nil
	}
	return nil, nil, replica.ErrNoReplica
}

// close stops whatever the entry runs; the last connection calls it.
func (s *shared) close() {
	if s.stopWatch != nil {
		close(s.stopWatch)
		<-s.watchDone
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lead != nil {
		if err := s.lead.Close(); err != nil {
			logger.Error("close replica", "db", s.path, "err", err)
		}
	}
	if s.passive != nil {
		s.passive.Close()
	}
	if s.view != nil {
		s.view.close() // after the view's files: eviction may remove them now
	}
	if s.gate != nil {
		s.gate.Free() // no connection is left to hold it; the replica closed
	}
}

// attachGate lets h's replica open the entry's gate.
func (s *shared) attachGate(h *follow.Handle) {
	if s.gate != nil {
		h.Replica.AttachGate(s.gate)
	}
}

// status is PRAGMA walrust_status: the follower's status, with TXIDs as
// plain numbers, and the role this process plays.
type status struct {
	follow.Status
	TXID uint64 `json:"txid"`
	Role string `json:"role"` // "follower"; "reader" when another process follows; "view" for as_of=
	// AsOf is the point a view was asked for (TXID and Timestamp say
	// what it shows).
	AsOf string `json:"as_of,omitempty"`
}

func (s *shared) status() status {
	s.mu.Lock()
	h, p := s.lead, s.passive
	s.mu.Unlock()
	if h != nil {
		st := h.Status()
		return status{Status: st, TXID: uint64(st.TXID), Role: "follower"}
	}
	s.mu.Lock()
	source := s.source
	s.mu.Unlock()
	st := follow.Status{Source: source, Path: s.path, Interval: s.cfg.Interval.String()}
	if p != nil {
		if v, err := p.Begin(); err == nil {
			st.TXID, st.Timestamp = v.TXID, v.Timestamp
			st.CommitAgeSeconds = time.Since(v.Timestamp).Seconds()
			st.LagSeconds = st.CommitAgeSeconds
			p.End()
			// Another process polls, and records when it last confirmed
			// the replica current (the lock file's time): the lag max_lag
			// goes by (stale.go). Before its first confirmation, the
			// commit's age.
			if l, err := replica.Inspect(s.path); err == nil && !l.Current.IsZero() {
				st.Current = l.Current
				st.LagSeconds = time.Since(l.Current).Seconds()
			}
		} else {
			st.LastError = err.Error()
		}
	}
	if s.view != nil {
		// Nothing is polled: the view is as old as its commit.
		st.Interval = ""
		return status{Status: st, TXID: uint64(st.TXID), Role: "view", AsOf: s.cfg.AsOf.String()}
	}
	return status{Status: st, TXID: uint64(st.TXID), Role: "reader"}
}
