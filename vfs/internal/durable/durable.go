// Package durable writes files so that a crash leaves either the old
// content or the new, never a mix, and never loses a rename; and creates
// them with the mode SQLite gives its own (Mode).
package durable

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteFile replaces path with data: written to path+".tmp", synced,
// renamed over path, and the directory synced so the rename survives a
// crash.
func WriteFile(path string, data []byte) error {
	commit, err := Prepare(path, data)
	if err != nil {
		return err
	}
	return commit()
}

// Prepare is WriteFile's first half: data written to path+".tmp" and
// synced, path untouched. commit renames it over path and syncs the
// directory. A caller that must not change anything the new file
// describes before it can be written (a full disk) prepares it first.
func Prepare(path string, data []byte) (commit func() error, err error) {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, Mode)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return func() error {
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
		return SyncDir(filepath.Dir(path))
	}, nil
}

// SyncDir makes renames and removals in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
