package vfs

import (
	"context"
	"errors"
	"fmt"
	"time"

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
	for {
		wait := s.cfg.Interval
		s.mu.Lock()
		if s.passive == nil {
			wait = min(wait, 50*time.Millisecond) // an open is waiting for the first bootstrap
		}
		s.mu.Unlock()
		select {
		case <-s.stopWatch:
			return
		case <-time.After(wait):
		}
		if s.tryTakeOver() {
			return
		}
		s.mu.Lock()
		if s.passive == nil {
			s.openPassiveLocked()
		}
		s.mu.Unlock()
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

// tryTakeOver becomes the follower if no other process is.
func (s *shared) tryTakeOver() bool {
	s.mu.Lock()
	want := s.source
	s.mu.Unlock()
	r, err := replica.Open(s.path, want)
	if errors.Is(err, replica.ErrFollowed) {
		return false
	} else if err != nil {
		logger.Warn("cannot take over following", "db", s.path, "err", err)
		return false
	}
	existing, source := r.Head() != nil, r.Source() // before the follower writes the state
	f, err := s.takeOverFollow(r)
	if err != nil {
		r.Close()
		logger.Warn("cannot take over following", "db", s.path, "err", err)
		return false
	}
	logger.Info("took over following", "db", s.path, "source", source)
	s.mu.Lock()
	p := s.passive
	s.replica, s.follower, s.existing, s.passive, s.source = r, f, existing, nil, source
	s.mu.Unlock()
	if p != nil {
		// Transactions begun passively end on the shared base file, which
		// the replica keeps open.
		p.Close()
	}
	return true
}

// takeOverFollow starts the follower of a takeover; reaching the store is
// bounded by the timeout of an open, and by close.
func (s *shared) takeOverFollow(r *replica.Replica) (*replica.Follower, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	go func() { // ends with the takeover at the latest
		select {
		case <-s.stopWatch:
			cancel()
		case <-ctx.Done():
		}
	}()
	return startFollower(ctx, r, s.cfg)
}

// waitReady waits until there is a version to read, in either role.
func (s *shared) waitReady(began time.Time, timeout time.Duration) error {
	deadline := began.Add(timeout)
	for {
		s.mu.Lock()
		f, existing, p, perr := s.follower, s.existing, s.passive, s.passiveErr
		s.mu.Unlock()
		switch {
		case f != nil && existing:
			// Served as it is while the first poll runs.
			return nil
		case f != nil:
			return f.WaitReadyFrom(began, timeout)
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
	r, p := s.replica, s.passive
	s.mu.Unlock()
	switch {
	case r != nil:
		v, err := r.Pin()
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
	if s.follower != nil {
		s.follower.Close()
	}
	if s.replica != nil {
		if err := s.replica.Close(); err != nil {
			logger.Error("close replica", "db", s.path, "err", err)
		}
	}
	if s.passive != nil {
		s.passive.Close()
	}
}

// status is PRAGMA walrust_status: the follower's status, with TXIDs as
// plain numbers, and the role this process plays.
type status struct {
	replica.Status
	TXID uint64 `json:"txid"`
	Role string `json:"role"` // "follower", or "reader" when another process follows
}

func (s *shared) status() status {
	s.mu.Lock()
	f, p := s.follower, s.passive
	s.mu.Unlock()
	if f != nil {
		st := f.Status()
		return status{Status: st, TXID: uint64(st.TXID), Role: "follower"}
	}
	s.mu.Lock()
	source := s.source
	s.mu.Unlock()
	st := replica.Status{Source: source, Path: s.path, Interval: s.cfg.Interval.String()}
	if p != nil {
		if v, err := p.Begin(); err == nil {
			st.TXID, st.Timestamp = v.TXID, v.Timestamp
			st.LagSeconds = time.Since(v.Timestamp).Seconds()
			p.End()
		} else {
			st.LastError = err.Error()
		}
	}
	return status{Status: st, TXID: uint64(st.TXID), Role: "reader"}
}
