package durable

import (
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Mode is the mode walrust creates files with. The kernel takes the umask
// off, so a replica, its side files and the LTX files walrust publishes end
// up as readable as a database SQLite creates (0644 under the usual 022
// umask): replicas are often read by another user, a web server.
// os.CreateTemp, which makes every file 0600 whatever the umask, is only
// for private scratch files.
const Mode fs.FileMode = 0o666

// CreateTemp is os.CreateTemp with Mode: a new file in dir whose name is
// pattern with its last "*" replaced by a random string, opened for
// reading and writing.
func CreateTemp(dir, pattern string) (*os.File, error) {
	prefix, suffix := pattern, ""
	if i := strings.LastIndex(pattern, "*"); i >= 0 {
		prefix, suffix = pattern[:i], pattern[i+1:]
	}
	for try := 0; ; try++ {
		name := filepath.Join(dir, prefix+strconv.FormatUint(rand.Uint64(), 36)+suffix)
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, Mode)
		if errors.Is(err, fs.ErrExist) && try < 100 {
			continue // another file took the name: draw again
		}
		return f, err
	}
}

// DirMode is the mode walrust creates directories with (less the umask),
// as the replica's log directory: others may read and search them, so that
// another user reads what they hold.
const DirMode fs.FileMode = 0o755

// MkdirTemp is os.MkdirTemp with DirMode: os.MkdirTemp makes 0700
// directories whatever the umask, and one that is renamed into place (an
// as_of view) would keep that, unreadable to any other user.
func MkdirTemp(dir, pattern string) (string, error) {
	prefix, suffix := pattern, ""
	if i := strings.LastIndex(pattern, "*"); i >= 0 {
		prefix, suffix = pattern[:i], pattern[i+1:]
	}
	for try := 0; ; try++ {
		name := filepath.Join(dir, prefix+strconv.FormatUint(rand.Uint64(), 36)+suffix)
		err := os.Mkdir(name, DirMode)
		if errors.Is(err, fs.ErrExist) && try < 100 {
			continue // another directory took the name: draw again
		}
		if err != nil {
			return "", err
		}
		return name, nil
	}
}
