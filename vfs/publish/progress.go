package publish

import (
	"io"
	"time"
)

// Progress reports how far one phase of a publish has come.
type Progress struct {
	// Phase is "compare" (reading the whole database and comparing it
	// with the published state), "follow" (encoding the pages of a WAL
	// database's new log frames), "snapshot" (encoding a snapshot),
	// "announce" (the level-0 file beside a snapshot) or "upload" (writing
	// the LTX file to the store).
	Phase   string
	File    string // the LTX file's name, once it is known
	Done    int64  // bytes
	Total   int64  // bytes
	Elapsed time.Duration
}

// Percent is Done as a share of Total, 0 to 100.
func (p Progress) Percent() float64 {
	if p.Total <= 0 {
		return 100
	}
	return 100 * float64(p.Done) / float64(p.Total)
}

// Rate is the phase's average speed so far, in bytes per second.
func (p Progress) Rate() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Done) / p.Elapsed.Seconds()
}

// DefaultProgressThreshold is the smallest phase (in bytes) for which a
// Publisher reports progress unless Options say otherwise.
const DefaultProgressThreshold = 8 << 20

// progressEvery is the shortest time between two reports of one phase.
const progressEvery = 250 * time.Millisecond

// phaseProgress returns the callback a phase feeds with (done, total), or
// nil when nobody listens. Reports come at most every progressEvery, plus
// one when the phase completes, and only for phases of at least threshold
// bytes.
func phaseProgress(fn func(Progress), threshold int64, phase, file string) func(done, total int64) {
	if fn == nil {
		return nil
	}
	start := time.Now()
	var last time.Time
	return func(done, total int64) {
		if total < threshold {
			return
		}
		now := time.Now()
		if done < total && now.Sub(last) < progressEvery {
			return
		}
		last = now
		fn(Progress{Phase: phase, File: file, Done: done, Total: total, Elapsed: now.Sub(start)})
	}
}

// progressReader feeds a phase's progress callback as r is read.
type progressReader struct {
	r        io.Reader
	done     int64
	total    int64
	progress func(done, total int64)
}

func (pr *progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	pr.done += int64(n)
	if pr.progress != nil && n > 0 {
		pr.progress(pr.done, pr.total)
	}
	return n, err
}
