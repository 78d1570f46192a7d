package publish

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/internal/durable"
	"github.com/walrust/walrust/vfs/store"
)

// Names inside the work directory.
const (
	positionFile = "position.json"
	lockFile     = "lock"
	copyFile     = "copy.db"     // the copy earlier versions took; removed by tidy
	pendingFile  = "pending.ltx" // the LTX file being written
	imagePrefix  = "image-"      // image-<txid>.db: the last published image
	// positionVer is the version save writes. Version 2 added Snapshot and
	// RetainedThrough; a version-1 position is the same without them.
	// Version 3 added Redo and WAL, and lets Image keep its name across
	// TXIDs (it is updated in place).
	positionVer = 3
)

// position is where publishing stands: the last published TXID, the
// database checksum at that TXID, and the image it describes. It is
// replaced atomically, and it is the only commit point: an image file that
// position.json does not name is left over from a crash and removed.
type position struct {
	Version  int          `json:"version"`
	TXID     ltx.TXID     `json:"txid"`
	Checksum ltx.Checksum `json:"checksum"`
	PageSize uint32       `json:"page_size"`
	Commit   uint32       `json:"commit"`
	Image    string       `json:"image"`
	Store    string       `json:"store"`
	Last     fileRef      `json:"last_file"` // the file that reached TXID
	// Also is the level-0 file published with a snapshot at the same TXID
	// (see Publisher.announce); it is ours too.
	Also *fileRef `json:"also_file,omitempty"`
	// Snapshot is a periodic snapshot at TXID (see
	// Publisher.periodicSnapshot); it is ours too. It is recorded before
	// its upload, so that no crash leaves it in the store unrecognised.
	Snapshot *fileRef `json:"snapshot_file,omitempty"`
	// RetainedThrough is the TXID of the snapshot that covered the last
	// completed retention pass: until an older-than-Retention snapshot
	// beyond it exists, another pass would find nothing new to delete.
	RetainedThrough ltx.TXID `json:"retained_through,omitempty"`
	// Promoted says walrust promote made this position from a replica of
	// the store (see Adopt), not a publish: no file in the store is ours
	// yet, whichever file reached TXID continues the lineage, and a store
	// that is ahead of TXID has another primary (checkStore).
	Promoted bool `json:"promoted,omitempty"`
	// Redo is the LTX file (redo-<txid>.ltx) that reached TXID, kept in the
	// work directory: load applies it to Image again, which finishes an
	// update of the image that a crash interrupted (see redo.go).
	Redo string `json:"redo,omitempty"`
	// WAL is where the publisher stands in a WAL-mode database's log (see
	// walfollow.go); nil for a rollback-mode database, or before the first
	// publish that read the log.
	WAL *walPos `json:"wal,omitempty"`
}

// ours says whether a listed file is one that position names as published
// from here.
func (p position) ours(f store.FileInfo) bool {
	return p.Last.is(f) || (p.Also != nil && p.Also.is(f)) || (p.Snapshot != nil && p.Snapshot.is(f))
}

// fileRef is a store.FileInfo as it is kept in position.json.
type fileRef struct {
	Level   int      `json:"level"`
	MinTXID ltx.TXID `json:"min_txid"`
	MaxTXID ltx.TXID `json:"max_txid"`
	Size    int64    `json:"size"`
}

func refOf(f store.FileInfo) fileRef {
	return fileRef{Level: f.Level, MinTXID: f.MinTXID, MaxTXID: f.MaxTXID, Size: f.Size}
}

// is says whether a listed file is the one r names.
func (r fileRef) is(f store.FileInfo) bool {
	return f.Level == r.Level && f.MinTXID == r.MinTXID && f.MaxTXID == r.MaxTXID &&
		(f.Size == 0 || r.Size == 0 || f.Size == r.Size)
}

func (r fileRef) info() store.FileInfo {
	return store.FileInfo{Level: r.Level, MinTXID: r.MinTXID, MaxTXID: r.MaxTXID, Size: r.Size}
}

// workDir is the publisher's private directory, held under an exclusive
// lock so that two publishers never share one.
type workDir struct {
	dir  string
	lock *os.File
}

func openWorkDir(dir string) (*workDir, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("work directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, durable.Mode)
	if err != nil {
		return nil, fmt.Errorf("work directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("work directory %s: another publisher is using it", dir)
		}
		return nil, fmt.Errorf("work directory %s: lock: %w", dir, err)
	}
	return &workDir{dir: dir, lock: f}, nil
}

func (w *workDir) path(name string) string { return filepath.Join(w.dir, name) }

func imageName(txid ltx.TXID) string { return imagePrefix + txid.String() + ".db" }

// close releases the lock.
func (w *workDir) close() error {
	if err := w.lock.Close(); err != nil {
		return fmt.Errorf("work directory %s: unlock: %w", w.dir, err)
	}
	return nil
}

// load reads the position. ok is false when there is none, or when what is
// there cannot be used (the reason says why); then publishing starts over
// with a snapshot.
func (w *workDir) load() (pos position, ok bool, reason string, err error) {
	b, err := os.ReadFile(w.path(positionFile))
	if errors.Is(err, os.ErrNotExist) {
		return position{}, false, "no local position", nil
	} else if err != nil {
		return position{}, false, "", fmt.Errorf("read position: %w", err)
	}
	if err := json.Unmarshal(b, &pos); err != nil {
		return position{}, false, fmt.Sprintf("local position is unreadable (%v)", err), nil
	}
	if pos.Version < 1 || pos.Version > positionVer || pos.TXID == 0 || !validImageName(pos.Image) ||
		(pos.Version < 3 && pos.Image != imageName(pos.TXID)) || (pos.Redo != "" && !validRedoName(pos.Redo)) {
		return position{}, false, "local position is not one this version wrote", nil
	}
	if pos.Redo != "" {
		if err := applyRedo(w.path(pos.Image), w.path(sumsFile), w.path(pos.Redo), pos.TXID); err != nil {
			return position{}, false, fmt.Sprintf("local image could not be brought to TXID %d (%v)", pos.TXID, err), nil
		}
	}
	fi, err := os.Stat(w.path(pos.Image))
	if err != nil {
		return position{}, false, fmt.Sprintf("local image is missing (%v)", err), nil
	}
	if fi.Size() != int64(pos.PageSize)*int64(pos.Commit) {
		return position{}, false, "local image does not match the local position", nil
	}
	if err := w.checkSums(pos.Image, pos.Commit, pos.Checksum); err != nil && pos.Promoted {
		// Starting over with a snapshot would lose the check that no
		// other primary publishes there (checkPromoted).
		return position{}, false, "", fmt.Errorf("the image walrust promote left does not match its position: %w", err)
	} else if err != nil {
		return position{}, false, fmt.Sprintf("local image does not match the local position (%v)", err), nil
	}
	return pos, true, "", nil
}

// save makes pos the position: write, sync, rename, sync the directory.
func (w *workDir) save(pos position) error {
	pos.Version = positionVer
	b, err := json.MarshalIndent(pos, "", "  ")
	if err != nil {
		return fmt.Errorf("save position: %w", err)
	}
	if err := durable.WriteFile(w.path(positionFile), append(b, '\n')); err != nil {
		return fmt.Errorf("save position: %w", err)
	}
	return nil
}

// validImageName says whether name is one imageName gives.
func validImageName(name string) bool {
	return strings.HasPrefix(name, imagePrefix) && strings.HasSuffix(name, ".db") && !strings.ContainsRune(name, os.PathSeparator)
}

// tidy removes everything but the lock, the position and the files it
// names (keep: its image and redo file): copies, pending files and encoder
// spill files of an interrupted publish, older images and redo files.
func (w *workDir) tidy(keep ...string) error {
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		return fmt.Errorf("tidy work directory: %w", err)
	}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == lockFile || name == positionFile || slices.Contains(keep, name):
			continue
		case strings.HasPrefix(name, imagePrefix), strings.HasPrefix(name, copyFile), strings.HasPrefix(name, redoPrefix),
			name == pendingFile, name == positionFile+".tmp", name == sumsFile+".tmp", strings.HasPrefix(name, ".ltx-page-index-"):
			if err := os.Remove(w.path(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("tidy work directory: %w", errors.Join(errs...))
	}
	return nil
}
