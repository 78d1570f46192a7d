package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/walrust/walrust/vfs/follow"
	"github.com/walrust/walrust/vfs/store"
)

// A fleet is walrust replicate --config: many replicas followed by one
// process, each by its own follower, printed with its name before each
// line. The entries of the file are members; a discover entry is a
// discoverer, which adds a member for each database it finds.
type fleet struct {
	ctx     context.Context // ends at SIGINT/SIGTERM
	out     *lockedWriter
	errOut  *lockedWriter
	clients *store.Clients // one S3 client per endpoint, region, credentials
	logger  *slog.Logger
	lo      logOpts  // --log-format, --quiet, --summary-every
	log     *lineLog // the fleet's own lines

	mu         sync.Mutex
	members    map[string]*member     // by local file
	discoverer map[string]*discoverer // by local-dir
}

// memberSpec is what a member follows, and how: a changed spec at a
// reload is a member stopped and another started.
type memberSpec struct {
	source, local string
	settings      fleetSettings
	owner         string // the local-dir of the discover entry that found it; "" for an entry
}

func (s memberSpec) key() string {
	ps := ""
	if s.settings.store.PathStyle != nil {
		ps = fmt.Sprint(*s.settings.store.PathStyle)
	}
	st := s.settings
	return fmt.Sprintf("%s|%s|%s|%s|%d|%s|%s|%s|%s", s.source, s.local, st.interval, st.maxInterval, st.maxSize, st.store.Endpoint, st.store.Region, ps, s.owner)
}

// A member is one replica the fleet follows.
type member struct {
	spec   memberSpec
	p      *replicatePrinter
	cancel context.CancelFunc
	done   chan struct{} // closed when the start is over (h or err set)

	mu       sync.Mutex
	h        *follow.Handle
	err      error
	failedAt time.Time
}

// lockedWriter writes whole lines of many printers to one writer, each
// after its prefix.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// Write writes one whole line (the printers write a line at a time).
func (lw *lockedWriter) Write(b []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return lw.w.Write(b)
}

// say writes a line of the fleet's own (not a member's) in its format.
func (f *fleet) say(w io.Writer, level slog.Level, msg string, attrs ...any) {
	f.log.line(w, level, msg, attrs...)
}

// runFleet runs walrust replicate --config path until SIGINT or SIGTERM;
// SIGHUP reads the file again and starts and stops what changed.
func runFleet(ctx context.Context, e *env, path string, lo logOpts) error {
	cfg, err := loadFleetConfig(path)
	if err != nil {
		return fmt.Errorf("--config %w", err)
	}
	sigCtx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	f := &fleet{
		ctx: sigCtx, out: &lockedWriter{w: e.stdout}, errOut: &lockedWriter{w: e.stderr},
		clients: store.NewClients(), lo: lo, log: newLineLog(lo.format, "cmd", "replicate"),
		logger:  followerLogger(os.Getenv("WALRUST_LOG"), newLineLog(lo.format)),
		members: map[string]*member{}, discoverer: map[string]*discoverer{},
	}
	if cfg.metricsAddr != "" {
		ops, err := startOps(cfg.metricsAddr, cfg.maxLag, f.followed)
		if err != nil {
			return err
		}
		defer ops.close()
		f.say(f.out, slog.LevelInfo, fmt.Sprintf("Serving metrics on %s/metrics, health on %s/healthz", ops.URL(), ops.URL()), "addr", ops.URL())
	}
	f.apply(cfg)

	ticker := time.NewTicker(statusEvery)
	defer ticker.Stop()
	for running := true; running; {
		select {
		case <-sigCtx.Done():
			running = false
		case <-hup:
			next, err := loadFleetConfig(path)
			if err != nil {
				f.say(f.errOut, slog.LevelError, fmt.Sprintf("Reload: %v; the running configuration stays", err), "err", err)
				continue
			}
			if next.metricsAddr != cfg.metricsAddr || next.maxLag != cfg.maxLag {
				f.say(f.errOut, slog.LevelWarn, "Reload: metrics-addr and max-lag change only at a restart")
			}
			added, removed := f.apply(next)
			f.say(f.out, slog.LevelInfo, fmt.Sprintf("Reloaded %s: %d started, %d stopped", path, added, removed), "started", added, "stopped", removed)
		case <-ticker.C:
			f.tick()
		}
	}
	stop()
	slow := time.AfterFunc(time.Second, func() {
		f.say(f.errOut, slog.LevelInfo, "Finishing the files in hand (interrupt again to stop at once)...")
	})
	defer slow.Stop()
	return f.stopAll()
}

// apply makes the running members and discoverers those of cfg, and
// says how many started and stopped.
func (f *fleet) apply(cfg *fleetConfig) (added, removed int) {
	want := map[string]memberSpec{}
	wantDisc := map[string]fleetEntry{}
	for _, e := range cfg.entries {
		if e.discover != "" {
			wantDisc[e.dir] = e
			continue
		}
		want[e.local] = memberSpec{source: e.source, local: e.local, settings: e.fleetSettings}
	}
	f.mu.Lock()
	var stopping []*member
	var stoppingDisc []*discoverer
	for dir, d := range f.discoverer {
		if e, ok := wantDisc[dir]; !ok || e.discover != d.entry.discover || fmt.Sprint(e.fleetSettings) != fmt.Sprint(d.entry.fleetSettings) {
			stoppingDisc = append(stoppingDisc, d)
			delete(f.discoverer, dir)
		}
	}
	for local, m := range f.members {
		gone := false
		if m.spec.owner == "" {
			s, ok := want[local]
			gone = !ok || s.key() != m.spec.key()
		} else {
			_, gone = wantDisc[m.spec.owner]
			gone = !gone || f.discoverer[m.spec.owner] == nil
		}
		if gone {
			stopping = append(stopping, m)
			delete(f.members, local)
		}
	}
	f.mu.Unlock()
	for _, d := range stoppingDisc {
		d.stop()
	}
	removed = len(stopping)
	f.stopMembers(stopping)

	f.mu.Lock()
	defer f.mu.Unlock()
	for local, s := range want {
		if _, ok := f.members[local]; !ok {
			f.startLocked(s)
			added++
		}
	}
	for dir, e := range wantDisc {
		if f.discoverer[dir] == nil {
			f.discoverer[dir] = f.discover(e)
		}
	}
	return added, removed
}

// startLocked starts following a member; f.mu is held.
func (f *fleet) startLocked(s memberSpec) *member {
	ctx, cancel := context.WithCancel(f.ctx)
	m := &member{spec: s, cancel: cancel, done: make(chan struct{})}
	m.p = newReplicatePrinter(f.out, f.errOut, s.local, s.settings.interval)
	m.p.log.prefix = s.local + ": " // plain and text; json has db
	m.p.setLog(f.lo.format, f.lo.quiet, f.lo.summary())
	f.members[s.local] = m
	opts := s.settings.store
	opts.Clients = f.clients
	interval := s.settings.interval
	go func() {
		defer close(m.done)
		h, err := follow.Lead(ctx, s.local, follow.Config{
			Source:      s.source,
			CheckStore:  true, // a wrong source shows as this member's error
			Interval:    interval,
			MaxInterval: s.settings.maxInterval,
			MaxSize:     s.settings.maxSize,
			Store:       opts,
			Logger:      f.logger,
			OnEvent:     m.p.event,
		}, func() time.Duration { return min(interval, time.Second) }, func(bool) { m.p.waiting() })
		m.mu.Lock()
		defer m.mu.Unlock()
		m.h, m.err = h, err
		if err != nil {
			m.failedAt = time.Now()
			if ctx.Err() == nil {
				m.p.problem(fmt.Sprintf("Error: %v; trying again in %s", err, s.settings.discoverEvery), "err", err)
			}
		}
	}()
	return m
}

// tick prints what the members' statuses say, and starts again the
// members whose start failed a while ago.
func (f *fleet) tick() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.members {
		m.mu.Lock()
		h, err, failedAt := m.h, m.err, m.failedAt
		m.mu.Unlock()
		switch {
		case h != nil:
			m.p.status(h.Status(), h.Replica.Head() != nil)
		case err != nil && time.Since(failedAt) >= m.spec.settings.discoverEvery && f.ctx.Err() == nil:
			m.cancel()
			f.startLocked(m.spec)
		}
	}
}

// stopMembers stops members, all at once, each after the file in hand.
func (f *fleet) stopMembers(ms []*member) error {
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.cancel()
			<-m.done
			if m.h == nil {
				return
			}
			m.h.Follower.Close()
			if v := m.h.Replica.Head(); v != nil {
				m.p.info(fmt.Sprintf("Stopped at TXID %d (%s)", uint64(v.TXID), m.spec.local), "txid", uint64(v.TXID))
			} else {
				m.p.info(fmt.Sprintf("Stopped before any snapshot was installed (%s)", m.spec.local))
			}
			errs[i] = m.h.Close()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (f *fleet) stopAll() error {
	f.mu.Lock()
	var ms []*member
	for _, m := range f.members {
		ms = append(ms, m)
	}
	ds := f.discoverer
	f.members, f.discoverer = map[string]*member{}, map[string]*discoverer{}
	f.mu.Unlock()
	for _, d := range ds {
		d.stop()
	}
	return f.stopMembers(ms)
}

// followed is every member, for /metrics and /healthz: one that has not
// started (or could not) has TXID 0 and says why.
func (f *fleet) followed() []followed {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []followed
	for _, m := range f.members {
		m.mu.Lock()
		h, err := m.h, m.err
		m.mu.Unlock()
		switch {
		case h != nil:
			out = append(out, followed{db: m.spec.local, status: h.Status})
		default:
			msg := "starting"
			if err != nil {
				msg = err.Error()
			}
			out = append(out, followed{db: m.spec.local, status: func() follow.Status { return follow.Status{LastError: msg} }})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].db < out[j].db })
	return out
}

// A discoverer follows every database under a prefix: it lists the
// prefix at the start and every discover-every, and adds a member for
// each database it has not seen. One that disappears is still served.
type discoverer struct {
	entry  fleetEntry
	cancel context.CancelFunc
	done   chan struct{}
}

func (d *discoverer) stop() {
	d.cancel()
	<-d.done
}

func (f *fleet) discover(e fleetEntry) *discoverer {
	ctx, cancel := context.WithCancel(f.ctx)
	d := &discoverer{entry: e, cancel: cancel, done: make(chan struct{})}
	name := e.discover
	opts := e.store
	opts.Clients = f.clients
	go func() {
		defer close(d.done)
		if err := os.MkdirAll(e.dir, 0o755); err != nil {
			f.say(f.errOut, slog.LevelError, fmt.Sprintf("%s: Error: %v", name, err), "db", name, "err", err)
		}
		var st store.Store
		var failing string
		listed := map[string]bool{}
		for {
			names, err := func() ([]string, error) {
				if st == nil {
					var err error
					if st, err = store.Open(ctx, e.discover, opts); err != nil {
						return nil, err
					}
				}
				return store.ListDatabases(ctx, st)
			}()
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				if msg := err.Error(); msg != failing {
					f.say(f.errOut, slog.LevelError, fmt.Sprintf("%s: Error: %v; listing again every %s", name, err, e.discoverEvery), "db", name, "err", err)
					failing = msg
				}
			default:
				if failing != "" {
					f.say(f.errOut, slog.LevelInfo, fmt.Sprintf("%s: Recovered: the listing succeeds again", name), "db", name)
					failing = ""
				}
				f.found(e, names, listed)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(e.discoverEvery):
			}
		}
	}()
	return d
}

// found starts members for the databases a discoverer listed, and says
// which are no longer listed.
func (f *fleet) found(e fleetEntry, names []string, listed map[string]bool) {
	now := map[string]bool{}
	for _, n := range names {
		now[n] = true
	}
	for n := range listed {
		if !now[n] {
			f.say(f.errOut, slog.LevelWarn, fmt.Sprintf("%s: %s is no longer under %s; its replica is still served", filepath.Join(e.dir, n+".db"), n, e.discover), "db", filepath.Join(e.dir, n+".db"))
			delete(listed, n)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.discoverer[e.dir] == nil || f.ctx.Err() != nil {
		return // stopped meanwhile
	}
	for _, n := range names {
		if listed[n] {
			continue
		}
		listed[n] = true
		local := filepath.Join(e.dir, n+".db")
		if m, ok := f.members[local]; ok {
			if m.spec.owner != e.dir {
				f.say(f.errOut, slog.LevelWarn, fmt.Sprintf("%s: found under %s, but another entry keeps this file; skipped", local, e.discover), "db", local)
			}
			continue
		}
		u, err := url.Parse(e.discover)
		if err != nil {
			continue // Check passed: cannot happen
		}
		source := store.Canonical(u.JoinPath(n).String())
		f.say(f.out, slog.LevelInfo, fmt.Sprintf("%s: found %s", local, source), "db", local, "source", source)
		f.startLocked(memberSpec{source: source, local: local, settings: e.fleetSettings, owner: e.dir})
	}
}
