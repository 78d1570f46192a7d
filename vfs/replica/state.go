package replica

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/internal/durable"
)

// State is the content of <db>-replica-state: what the base file (the local
// database file itself) holds. Versions applied after it live in the log
// directory until they are folded in, so the state only moves at a fold.
type State struct {
	Origin
	TXID      ltx.TXID     `json:"txid"`
	Timestamp time.Time    `json:"timestamp"`          // when the primary committed TXID (from the LTX header)
	Checksum  ltx.Checksum `json:"checksum,omitempty"` // LTX rolling checksum of the database at TXID; absent (0): unknown, the files carry none
	PageSize  uint32       `json:"page_size"`
	Commit    uint32       `json:"commit"` // database size in pages

	// Counter is the change counter written into the base file's page 1. It
	// moves forward with every version this replica makes, even when a
	// re-bootstrap lands on a lower TXID, so no SQLite page cache survives a
	// change of content.
	Counter uint32 `json:"change_counter"`

	// Page1Checksum is ltx.ChecksumPage(1, ...) of page 1 as the primary wrote
	// it. The base file holds page 1 patched for a rollback-journal replica,
	// so the running checksum cannot be updated from the file's own bytes.
	Page1Checksum ltx.Checksum `json:"page1_checksum"`
	// Page1Header is the first 100 bytes of page 1 as the primary wrote it
	// (the base file's copy is patched the same way): what Export needs to
	// give back the primary's exact file, its journal mode included. Nil
	// when unknown: a replica made by an older walrust, until page 1 next
	// arrives in a file.
	Page1Header []byte `json:"page1_header,omitempty"`

	// Staged is a verified, synced snapshot that is to become the base
	// file. A first bootstrap renames it into place; a re-bootstrap serves
	// it as a version until a fold copies it into the base file (so readers
	// of the old chain, and other processes holding the file open, are never
	// cut off). Set from the moment it is staged until it is in the base, so
	// that a restart picks it up again.
	Staged *StagedSnapshot `json:"staged,omitempty"`
}

// Origin is where a replica's versions come from: the source it follows
// and how to reach it, as given when the replica was made. It stays the
// same for the replica's life.
type Origin struct {
	Source string `json:"source"`
	// Store is the store options the replica was made with (S3's
	// endpoint, region and addressing), so that an open that gives none
	// reaches the same store. Never credentials. This package knows no
	// store: vfs/follow turns them into store.Options.
	Store StoreOptions `json:"store,omitzero"`
}

// StoreOptions are a store's options as the state file keeps them: plain
// values, the zero value meaning none given.
type StoreOptions struct {
	Endpoint  string `json:"endpoint,omitempty"`
	Region    string `json:"region,omitempty"`
	PathStyle *bool  `json:"path_style,omitempty"` // nil: decided from the endpoint
}

// IsZero says no option was given.
func (o StoreOptions) IsZero() bool { return o.Endpoint == "" && o.Region == "" && o.PathStyle == nil }

// StagedSnapshot describes a staged snapshot file: a whole database at TXID.
type StagedSnapshot struct {
	Path          string       `json:"path"`
	TXID          ltx.TXID     `json:"txid"`
	Timestamp     time.Time    `json:"timestamp"`
	Checksum      ltx.Checksum `json:"checksum,omitempty"`
	PageSize      uint32       `json:"page_size"`
	Commit        uint32       `json:"commit"`
	Page1Checksum ltx.Checksum `json:"page1_checksum"`
	Page1Header   []byte       `json:"page1_header,omitempty"` // see State.Page1Header
}

func statePath(dbPath string) string { return dbPath + "-replica-state" }

// ReadState reads the state file of the replica at dbPath, and checks it;
// it returns (nil, nil) when there is none.
func ReadState(dbPath string) (*State, error) {
	b, err := os.ReadFile(statePath(dbPath))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("read state %s: %w", statePath(dbPath), err)
	}
	if err := s.check(dbPath); err != nil {
		return nil, err
	}
	return &s, nil
}

// ReadSource is the source the state file of the replica at dbPath names,
// and whether there is a state file: whether walrust made that replica.
func ReadSource(dbPath string) (source string, made bool, err error) {
	st, err := ReadState(dbPath)
	if err != nil || st == nil {
		return "", false, err
	}
	return st.Source, true, nil
}

// writeState replaces the state file atomically: write a temporary file,
// sync it, rename it over the old one, sync the directory. A crash leaves
// either the old state or the new one, never a torn file.
func writeState(dbPath string, s *State) error {
	commit, err := prepareState(dbPath, s)
	if err != nil {
		return err
	}
	return commit()
}

// prepareState is writeState's first half (durable.Prepare): the new
// state is on disk beside the state file, which commit replaces with it.
func prepareState(dbPath string, s *State) (commit func() error, err error) {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode state: %w", err)
	}
	c, err := durable.Prepare(statePath(dbPath), append(b, '\n'))
	if err != nil {
		return nil, fmt.Errorf("write state: %w", err)
	}
	return func() error {
		if err := c(); err != nil {
			return fmt.Errorf("write state: %w", err)
		}
		return nil
	}, nil
}

// check refuses a state that no walrust wrote: hand-edited, or copied from
// elsewhere. It names what is wrong and what to do.
func (s *State) check(dbPath string) error {
	bad := func(what string, args ...any) error {
		return fmt.Errorf("%s: %s; %s", statePath(dbPath), fmt.Sprintf(what, args...), startOver(dbPath))
	}
	if s.TXID != 0 && !ltx.IsValidPageSize(s.PageSize) {
		return bad("page_size %d is not a SQLite page size", s.PageSize)
	}
	if st := s.Staged; st != nil {
		name := filepath.Base(st.Path)
		staged := strings.HasPrefix(name, "snapshot-") && strings.HasSuffix(name, stagedExt)
		hydrated := strings.HasPrefix(name, hydratePrefix) && strings.HasSuffix(name, imageExt) // a lazy bootstrap's image
		if filepath.Dir(st.Path) != dbPath+"-replica-log" || !staged && !hydrated {
			return bad("the staged snapshot %q is not in %s", st.Path, filepath.Base(dbPath)+"-replica-log")
		}
		if !ltx.IsValidPageSize(st.PageSize) {
			return bad("the staged snapshot's page_size %d is not a SQLite page size", st.PageSize)
		}
	}
	return nil
}

// startOver says how to get a replica whose files disagree going again.
func startOver(dbPath string) string {
	name := filepath.Base(dbPath)
	return fmt.Sprintf("remove %s and %s-replica-* to bootstrap it again", name, name)
}

// checkBase compares the base file, once everything is folded into it,
// with the state that describes it: its size, and page 1's page size, page
// count and change counter, which walrust wrote there itself. A file that
// disagrees was changed by something else (another program wrote to it, or
// the state file was edited), and serving it would serve data no primary
// ever had.
func checkBase(f *os.File, s *State, dbPath string) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("check base file: %w", err)
	}
	var hdr [100]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return fmt.Errorf("%s: read header: %w; %s", dbPath, err, startOver(dbPath))
	}
	ps := dbPageSize(hdr[:])
	var problem string
	switch want := int64(s.Commit) * int64(s.PageSize); {
	case string(hdr[:16]) != sqliteMagic:
		problem = "it does not start as a SQLite database"
	case fi.Size() != want:
		problem = fmt.Sprintf("it is %d bytes, the state says %d pages of %d bytes (%d bytes)", fi.Size(), s.Commit, s.PageSize, want)
	case ps != s.PageSize:
		problem = fmt.Sprintf("its page size is %d, the state says %d", ps, s.PageSize)
	case binary.BigEndian.Uint32(hdr[28:]) != s.Commit:
		problem = fmt.Sprintf("its header says %d pages, the state says %d", binary.BigEndian.Uint32(hdr[28:]), s.Commit)
	case binary.BigEndian.Uint32(hdr[24:]) != s.Counter:
		problem = fmt.Sprintf("its change counter is %d, the state says %d", binary.BigEndian.Uint32(hdr[24:]), s.Counter)
	default:
		return nil
	}
	return fmt.Errorf("%s does not match %s: %s: %w; moving it aside and bootstrapping again",
		dbPath, filepath.Base(statePath(dbPath)), problem, ErrModified)
}
