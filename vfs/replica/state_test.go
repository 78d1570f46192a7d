package replica

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStateDisagreesWithBase: a state file edited by hand is refused,
// saying how to start over (walrust cannot tell what else is wrong). A base
// file written by another program (a plain sqlite3 without mode=ro) used
// to be served as it was; the open now moves it aside, with any journal
// beside it, and starts over: the replica bootstraps again from the store,
// and the modified copy stays for whoever wants it.
func TestStateDisagreesWithBase(t *testing.T) {
	for _, tc := range []struct {
		name     string
		tamper   func(t *testing.T, w *world)
		err      string
		modified bool // healed: moved aside, bootstrapped again
	}{
		{"state commit edited", func(t *testing.T, w *world) {
			editState(t, w, func(s *State) { s.Commit += 3 })
		}, "the state says", true},
		{"state page size edited", func(t *testing.T, w *world) {
			editState(t, w, func(s *State) { s.PageSize = 1024 })
		}, "the state says", true},
		{"state page size invalid", func(t *testing.T, w *world) {
			editState(t, w, func(s *State) { s.PageSize = 3 })
		}, "page_size 3 is not a SQLite page size", false},
		{"staged path outside the log", func(t *testing.T, w *world) {
			editState(t, w, func(s *State) { s.Staged = &StagedSnapshot{Path: "/etc/hostname", PageSize: 512} })
		}, "is not in replica.db-replica-log", false},
		{"base file grown by another program", func(t *testing.T, w *world) {
			f, err := os.OpenFile(w.Path, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write(make([]byte, 512))
			f.Close()
		}, "bytes, the state says", true},
		{"base file written by another program, journal left", func(t *testing.T, w *world) {
			f, err := os.OpenFile(w.Path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteAt([]byte{0, 0, 0, 99}, 24) // SQLite bumps the change counter of a file it writes
			f.Close()
			if err := os.WriteFile(w.Path+"-journal", []byte("a hot journal"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "its change counter is 99", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, 512, true)
			r, _ := w.bootstrapped()
			r.Close()
			tc.tamper(t, w)
			tampered, _ := os.ReadFile(w.Path)
			r2, err := Open(w.Path, w.Source)
			if !tc.modified {
				if err == nil {
					r2.Close()
					t.Fatal("opened a replica whose state file is not walrust's")
				}
				if !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "to bootstrap it again") {
					t.Fatalf("open: %v; want %q and what to do", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("open of a replica changed by another program: %v; want it moved aside", err)
			}
			defer r2.Close()
			why := r2.OpenModified()
			if why == nil || !strings.Contains(why.Error(), tc.err) || r2.Head() != nil {
				t.Fatalf("OpenModified() = %v, head %v; want the reason and no version", why, r2.Head())
			}
			aside, _ := filepath.Glob(w.Path + ".modified-*")
			if len(aside) == 0 {
				t.Fatalf("nothing moved aside: %v", why)
			}
			kept, err := os.ReadFile(aside[0])
			if err != nil || !bytes.Equal(kept, tampered) {
				t.Fatalf("the copy moved aside differs from the modified file (%v)", err)
			}
			if _, err := os.Stat(w.Path + "-journal"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("a journal stays beside the new replica: %v", err)
			}
			mustStep(t, w.manual(r2))
			w.checkHead(r2, w.Pub.TXID, "bootstrapped again")
			w.checkBase(w.Pub.TXID, "bootstrapped again")
			// Applied files go to the log directory, as in any replica.
			w.InsertRows(3, 200)
			txid := w.Commit()
			if _, err := applyFile(r2, w.Encode(txid, txid)); err != nil {
				t.Fatal(err)
			}
			if n := logSegments(t, w.Path+"-replica-log"); n != 1 {
				t.Fatalf("%d segments in the log directory after an apply, want 1", n)
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
