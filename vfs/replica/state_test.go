package replica

import (
	"os"
	"strings"
	"testing"
)

// TestStateDisagreesWithBase: a state file edited by hand, or a base file
// written by another program, used to be served as they were; the open
// now refuses them and says how to start over.
func TestStateDisagreesWithBase(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, w *world)
		err    string
	}{
		{"state commit edited", func(t *testing.T, w *world) {
			editState(t, w, func(s *State) { s.Commit += 3 })
		}, "the state says"},
		{"state page size edited", func(t *testing.T, w *world) {
			editState(t, w, func(s *State) { s.PageSize = 1024 })
		}, "the state says"},
		{"state page size invalid", func(t *testing.T, w *world) {
			editState(t, w, func(s *State) { s.PageSize = 3 })
		}, "page_size 3 is not a SQLite page size"},
		{"staged path outside the log", func(t *testing.T, w *world) {
			editState(t, w, func(s *State) { s.Staged = &StagedSnapshot{Path: "/etc/hostname", PageSize: 512} })
		}, "is not in replica.db-replica-log"},
		{"base file grown by another program", func(t *testing.T, w *world) {
			f, err := os.OpenFile(w.Path, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write(make([]byte, 512))
			f.Close()
		}, "bytes, the state says"},
		{"base file written by another program", func(t *testing.T, w *world) {
			f, err := os.OpenFile(w.Path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteAt([]byte{0, 0, 0, 99}, 24) // SQLite bumps the change counter of a file it writes
			f.Close()
		}, "its change counter is 99"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, 512, true)
			r, _ := w.bootstrapped()
			r.Close()
			tc.tamper(t, w)
			r2, err := Open(w.Path, w.Source)
			if err == nil {
				r2.Close()
				t.Fatal("opened a replica whose base file and state disagree")
			}
			if !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "to bootstrap it again") {
				t.Fatalf("open: %v; want %q and what to do", err, tc.err)
			}
		})
	}
}

func editState(t *testing.T, w *world, edit func(*State)) {
	t.Helper()
	s, err := ReadState(w.Path)
	if err != nil || s == nil {
		t.Fatalf("read state: %v", err)
	}
	edit(s)
	if err := writeState(w.Path, s); err != nil {
		t.Fatal(err)
	}
}
