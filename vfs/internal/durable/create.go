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
