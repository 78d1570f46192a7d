package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/walrust/walrust/vfs/replica"
)

// localReport is `walrust status --local`: the replica's own files, and
// whether it is fresh enough.
type localReport struct {
	replica.Local
	// LagSeconds is how long ago it was last confirmed current (or, never
	// confirmed, how old its TXID's commit is).
	LagSeconds float64 `json:"lag_seconds"`
	MaxLag     string  `json:"max_lag"`
	Stale      bool    `json:"stale"`
}

func localStatus(e *env, path string, maxLag time.Duration, asJSON bool) error {
	l, err := replica.Inspect(path)
	if errors.Is(err, replica.ErrNoReplica) {
		h, err := replica.InspectHydration(path)
		if err != nil || h != nil {
			return bootstrapStatus(e, path, h, err, asJSON)
		}
		// A lazy bootstrap writes the state file before it removes its
		// checkpoint: one that finished between the two looks has its
		// state file now.
		if l, err = replica.Inspect(path); errors.Is(err, replica.ErrNoReplica) {
			return bootstrapStatus(e, path, nil, nil, asJSON)
		}
	}
	if err != nil {
		return err
	}
	now := time.Now()
	since := l.KnownCurrent()
	r := localReport{Local: *l, LagSeconds: now.Sub(since).Seconds(), MaxLag: maxLag.String()}
	r.Stale = now.Sub(since) > maxLag
	if asJSON {
		if err := writeJSON(e.stdout, r); err != nil {
			return err
		}
	} else {
		r.print(e.stdout, now)
	}
	if r.Stale {
		return exitCode(exitFailure)
	}
	return nil
}

func (r *localReport) print(w io.Writer, now time.Time) {
	ago := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return fmt.Sprintf("%s (%s ago)", t.Format(time.RFC3339), now.Sub(t).Round(time.Millisecond))
	}
	fmt.Fprintf(w, "Replica:   %s\n", r.Path)
	fmt.Fprintf(w, "Source:    %s\n", r.Source)
	fmt.Fprintf(w, "TXID:      %d, committed %s\n", uint64(r.TXID), ago(r.Timestamp))
	fmt.Fprintf(w, "Current:   confirmed %s\n", ago(r.Current))
	switch {
	case r.Follower == 0:
		fmt.Fprintf(w, "Follower:  none has run\n")
	case r.Following:
		fmt.Fprintf(w, "Follower:  process %d\n", r.Follower)
	default:
		fmt.Fprintf(w, "Follower:  none (process %d, the last one, has stopped)\n", r.Follower)
	}
	verdict := "fresh"
	if r.Stale {
		verdict = "STALE"
	}
	fmt.Fprintf(w, "Status:    %s (lag %s, max %s)\n", verdict, time.Duration(r.LagSeconds*float64(time.Second)).Round(time.Millisecond), r.MaxLag)
}

// bootstrapReport is `walrust status --local` on a replica with no
// bootstrap finished yet: a lazy one under way is shown from its last
// checkpoint. It is never fresh: no other process can read it yet.
type bootstrapReport struct {
	Path          string             `json:"path"`
	Bootstrapping *replica.Hydrating `json:"bootstrapping"` // null: none under way
	Stale         bool               `json:"stale"`
}

func bootstrapStatus(e *env, path string, h *replica.Hydrating, err error, asJSON bool) error {
	if err != nil {
		return err
	}
	if h == nil && !asJSON {
		if _, err := os.Stat(path); err == nil {
			return fmt.Errorf("%s is not a walrust replica: it has no %s (walrust keeps one beside every replica it makes, and never follows into a file it did not make)", path, filepath.Base(path)+"-replica-state")
		}
		return fmt.Errorf("%s has no replica yet: no follower has bootstrapped it (walrust replicate SOURCE --local %s does)", path, path)
	}
	r := bootstrapReport{Path: path, Bootstrapping: h, Stale: true}
	if asJSON {
		if err := writeJSON(e.stdout, r); err != nil {
			return err
		}
		return exitCode(exitFailure)
	}
	r.print(e.stdout, time.Now())
	return exitCode(exitFailure)
}

func (r *bootstrapReport) print(w io.Writer, now time.Time) {
	h := r.Bootstrapping
	fmt.Fprintf(w, "Replica:   %s\n", r.Path)
	progress := fmt.Sprintf("%d pages", h.PagesLocal)
	if h.Pages > 0 {
		progress = fmt.Sprintf("%d of %d pages (%.1f%%)", h.PagesLocal, h.Pages, 100*float64(h.PagesLocal)/float64(h.Pages))
	}
	fmt.Fprintf(w, "Bootstrap: lazy, from the snapshot of TXID %d: %s local at its last checkpoint, %s ago\n",
		uint64(h.TXID), progress, now.Sub(h.Checkpointed).Round(time.Millisecond))
	if h.Following {
		fmt.Fprintf(w, "Follower:  process %d\n", h.Follower)
	} else {
		fmt.Fprintf(w, "Follower:  none runs: the bootstrap resumes from its checkpoint when one starts\n")
	}
	fmt.Fprintf(w, "Status:    BOOTSTRAPPING (not readable by other processes until it is installed)\n")
}
