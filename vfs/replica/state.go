package replica

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/superfly/ltx"
	"github.com/walrust/walrust/vfs/internal/durable"
)

// State is the content of <db>-replica-state: what the base file (the local
// database file itself) holds. Versions applied after it live in the log
// directory until they are folded in, so the state only moves at a fold.
type State struct {
	Source    string       `json:"source"`
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

	// Staged is a verified, synced snapshot that is to become the base
	// file. A first bootstrap renames it into place; a re-bootstrap serves
	// it as a version until a fold copies it into the base file (so readers
	// of the old chain, and other processes holding the file open, are never
	// cut off). Set from the moment it is staged until it is in the base, so
	// that a restart picks it up again.
	Staged *StagedSnapshot `json:"staged,omitempty"`
}

// StagedSnapshot describes a staged snapshot file: a whole database at TXID.
type StagedSnapshot struct {
	Path          string       `json:"path"`
	TXID          ltx.TXID     `json:"txid"`
	Timestamp     time.Time    `json:"timestamp"`
	Checksum      ltx.Checksum `json:"checksum,omitempty"`
	PageSize      uint32       `json:"page_size"`
	Commit        uint32       `json:"commit"`
	Page1Checksum ltx.Checksum `json:"page1_checksum"`
}

func statePath(dbPath string) string { return dbPath + "-replica-state" }

// readState returns (nil, nil) when there is no state file.
func readState(dbPath string) (*State, error) {
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
	return &s, nil
}

// writeState replaces the state file atomically: write a temporary file,
// sync it, rename it over the old one, sync the directory. A crash leaves
// either the old state or the new one, never a torn file.
func writeState(dbPath string, s *State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	path := statePath(dbPath)
	if err := durable.WriteFile(path, append(b, '\n')); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}
