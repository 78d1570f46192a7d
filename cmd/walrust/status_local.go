package main

import (
	"encoding/json"
	"fmt"
	"io"
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
	if err != nil {
		return err
	}
	now := time.Now()
	since := l.Current
	if since.IsZero() {
		since = l.Timestamp
	}
	r := localReport{Local: *l, LagSeconds: now.Sub(since).Seconds(), MaxLag: maxLag.String()}
	r.Stale = now.Sub(since) > maxLag
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
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
