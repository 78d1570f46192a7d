package publish

import (
	"errors"
	"io"
	"os"
	"syscall"
	"time"
)

// fullCheckEvery bounds how long a publisher trusts an unchanged
// fingerprint before it reads the database anyway (for a followed WAL
// database, just the log after the position).
const fullCheckEvery = time.Minute

// fingerprint is a cheap summary of a database's files that every commit
// changes: in rollback-journal modes the change counter on page 1 (and the
// file's size and time); in WAL mode the -wal file grows with every commit
// and its header (salts, checkpoint sequence) changes when it restarts from
// the beginning. Equal fingerprints mean no commit happened in between, so a
// publisher may skip the reading. A fingerprint that misses a change could only
// delay a publish until the next commit or full check, never lose one: the
// next reading sees everything.
type fingerprint struct {
	dbIno, dbSize, dbMtime int64
	counter                [4]byte // page 1, offset 24
	walIno, walSize        int64
	walMtime               int64
	walHeader              [32]byte
}

// takeFingerprint reads the fingerprint of the database at path, whose
// file srcIno the publisher reads through db (never a descriptor of its
// own: see openSource). ok is false when the files cannot be read, or the
// path holds another file; then the publish reads, and the reading
// reports the error if there is one.
func takeFingerprint(path string, db *os.File, srcIno uint64) (fp fingerprint, ok bool) {
	fi, err := os.Stat(path)
	if err != nil || inode(fi) != srcIno {
		return fingerprint{}, false
	}
	fp.dbIno, fp.dbSize, fp.dbMtime = int64(srcIno), fi.Size(), fi.ModTime().UnixNano()
	if _, err := db.ReadAt(fp.counter[:], 24); err != nil && err != io.EOF {
		return fingerprint{}, false
	}
	// SQLite locks no byte of the log file (its locks are in the -shm
	// file), so a descriptor of it may come and go.
	fp.walIno, fp.walSize, fp.walMtime, err = readStamp(path+"-wal", 0, fp.walHeader[:])
	if errors.Is(err, os.ErrNotExist) {
		fp.walIno, fp.walSize, fp.walMtime, fp.walHeader = 0, -1, 0, [32]byte{}
	} else if err != nil {
		return fingerprint{}, false
	}
	return fp, true
}

// readStamp stats a file and reads len(b) bytes at off (fewer if the file is
// shorter).
func readStamp(path string, off int64, b []byte) (ino, size, mtime int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, 0, err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = int64(st.Ino)
	}
	if _, err := f.ReadAt(b, off); err != nil && err != io.EOF {
		return 0, 0, 0, err
	}
	return ino, fi.Size(), fi.ModTime().UnixNano(), nil
}
