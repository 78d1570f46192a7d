package replica

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/walrust/walrust/vfs/internal/durable"
)

// PromotedPath is where a promotion writes the new primary's database
// (with Export) before Promote puts it in the replica's place.
func PromotedPath(dbPath string) string { return dbPath + "-promoted" }

// Promote ends the replica's life as a replica: the database Export wrote
// at PromotedPath takes the base file's place, and walrust's files beside
// it (state, log directory, lock file) are removed. The replica is closed
// afterwards, whatever the outcome.
//
// Ordering, so that a crash at any instant leaves either the replica as it
// was or a promotion that ResumePromote finishes:
//  1. the promoted file is complete and synced before Promote is called
//     (Export renames it into place only then);
//  2. the state file is removed, and the directory synced: the commit
//     point, after which the file is no longer a replica;
//  3. the log directory is removed;
//  4. the promoted file is renamed over the base file (processes that hold
//     the old file open keep reading the old one), the directory synced;
//     at Close, the lock file is removed.
func (r *Replica) Promote() error {
	err := r.promote()
	r.mu.Lock()
	if err == nil {
		r.retired = true // Close removes the lock file
	}
	r.mu.Unlock()
	return errors.Join(err, r.Close())
}

func (r *Replica) promote() error {
	promoted := PromotedPath(r.path)
	if _, err := os.Stat(promoted); err != nil {
		return fmt.Errorf("promote %s: %w", r.path, err)
	}
	dir := filepath.Dir(r.path)
	if err := os.Remove(statePath(r.path)); err != nil {
		return fmt.Errorf("promote %s: %w", r.path, err)
	}
	if err := durable.SyncDir(dir); err != nil {
		return fmt.Errorf("promote %s: %w", r.path, err)
	}
	hook("promote:committed")
	return finishPromote(r.path)
}

// ResumePromote finishes a promotion that a crash interrupted after its
// commit point: no state file, and the promoted database beside the file.
// It reports whether there was one to finish. Call it before opening the
// file as a replica (or as anything else).
func ResumePromote(dbPath string) (bool, error) {
	if _, err := os.Stat(PromotedPath(dbPath)); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("resume promotion of %s: %w", dbPath, err)
	}
	if _, err := os.Stat(statePath(dbPath)); err == nil {
		return false, nil // not committed: the promotion starts again
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("resume promotion of %s: %w", dbPath, err)
	}
	l, err := acquireLeader(dbPath)
	if err != nil {
		return false, fmt.Errorf("resume promotion of %s: %w", dbPath, err)
	}
	err = finishPromote(dbPath)
	l.release(err == nil)
	return err == nil, err
}

// finishPromote is steps 3 and 4 of Promote, but the lock file. The log
// goes before the rename: the rename is what ResumePromote detects an
// unfinished promotion by (the promoted file beside the database), so
// whatever a crash leaves after it stays for good; the log may be as large
// as the database.
func finishPromote(dbPath string) error {
	if err := os.RemoveAll(dbPath + "-replica-log"); err != nil {
		return fmt.Errorf("promote %s: remove the replica's log: %w", dbPath, err)
	}
	hook("promote:log-removed")
	if err := os.Rename(PromotedPath(dbPath), dbPath); err != nil {
		return fmt.Errorf("promote %s: %w", dbPath, err)
	}
	if err := durable.SyncDir(filepath.Dir(dbPath)); err != nil {
		return fmt.Errorf("promote %s: %w", dbPath, err)
	}
	hook("promote:renamed")
	return nil
}
