package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/internal/durable"
)

// FileStore is a local directory in Litestream's file-replica layout:
// <root>/ltx/<level in decimal>/<min>-<max>.ltx.
type FileStore struct {
	root  string
	stats counters
}

// fileScheme is file:///abs/dir: a local directory.
var fileScheme = scheme{
	form: "file:///absolute/dir",
	check: func(u *url.URL) error {
		if (u.Host != "" && u.Host != "localhost") || u.Opaque != "" || !strings.HasPrefix(u.Path, "/") {
			return errors.New("a file source is file:///absolute/dir")
		}
		return nil
	},
	canonical: func(u *url.URL) string { return "file://" + escapePath(path.Clean("/"+u.Path)) },
	open: func(_ context.Context, u *url.URL, opts Options) (Store, error) {
		if opts.Create {
			if err := os.MkdirAll(u.Path, 0o755); err != nil {
				return nil, fmt.Errorf("create file store: %w", err)
			}
		}
		return OpenFile(u.Path)
	},
}

// OpenFile opens the store rooted at an absolute directory that exists.
func OpenFile(root string) (*FileStore, error) {
	if root == "" || !filepath.IsAbs(root) {
		return nil, fmt.Errorf("file store %q: path must be absolute (file:///abs/dir)", root)
	}
	fi, err := os.Stat(root)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("file store %s: directory does not exist: %w", root, ErrNotFound)
		}
		return nil, fileErr("file store "+root, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("file store %s: not a directory", root)
	}
	return &FileStore{root: filepath.Clean(root)}, nil
}

func (s *FileStore) String() string { return "file://" + s.root }

func (s *FileStore) Stats() Stats { return s.stats.snapshot() }

func (s *FileStore) levelDir(level int) string {
	return filepath.Join(s.root, "ltx", strconv.Itoa(level))
}

func (s *FileStore) path(f FileInfo) string {
	return filepath.Join(s.levelDir(f.Level), f.Name())
}

// ListAfter reads the level's directory. A level directory that does not
// exist yet is an empty level, not an error.
func (s *FileStore) ListAfter(ctx context.Context, level int, after ltx.TXID) ([]FileInfo, error) {
	s.stats.lists.Add(1)
	entries, err := readDirBounded(s.levelDir(level))
	if errors.Is(err, fs.ErrNotExist) {
		if _, rootErr := os.Stat(s.root); rootErr != nil {
			return nil, fmt.Errorf("list %s L%d: store directory is gone: %w", s, level, ErrNotFound)
		}
		return nil, nil
	} else if errors.Is(err, errListTooLong) {
		return nil, errTooMany(fmt.Sprintf("list %s L%d", s, level))
	} else if err != nil {
		return nil, fileErr(fmt.Sprintf("list %s L%d", s, level), err)
	}
	var files []FileInfo
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed while listing (retention); it is not ours to serve
		}
		f, ok := parseName(level, e.Name(), info.Size(), info.ModTime())
		if ok && f.MinTXID > after {
			files = append(files, f)
		}
	}
	sortFiles(files)
	return files, nil
}

var errListTooLong = errors.New("too many entries")

// readDirBounded is os.ReadDir that stops past maxListed entries instead of
// reading a directory of any size into memory.
func readDirBounded(dir string) ([]fs.DirEntry, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	var entries []fs.DirEntry
	for {
		batch, err := d.ReadDir(1024)
		entries = append(entries, batch...)
		if len(entries) > maxListed {
			return nil, errListTooLong
		}
		if err == io.EOF {
			return entries, nil
		} else if err != nil {
			return nil, err
		}
	}
}

func (s *FileStore) Open(ctx context.Context, f FileInfo) (io.ReadCloser, error) {
	fh, err := s.openFile(f)
	if err != nil {
		return nil, err
	}
	return LimitBody(countingReader{fh, &s.stats.bytes}, f, listedSize(f)), nil
}

// openFile opens a listed file for reading, counted as a GET; a file gone
// since the listing is ErrNotFound.
func (s *FileStore) openFile(f FileInfo) (*os.File, error) {
	s.stats.gets.Add(1)
	fh, err := os.Open(s.path(f))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open %s: %w", f, ErrNotFound)
	} else if err != nil {
		return nil, fileErr(fmt.Sprintf("open %s", f), err)
	}
	return fh, nil
}

// fileErr is err in op, where a permission error is ErrAccessDenied: as
// with an S3 store's refusal, no retry cures it (an open fails at once,
// naming it, instead of waiting out its timeout); a person must change
// the permissions.
func fileErr(op string, err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%s: %w: %w; check the permissions of the store's directories and files for this user", op, ErrAccessDenied, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// Put writes to a temporary name in the level directory, syncs it and renames
// it into place, so a reader listing the directory sees all of it or nothing.
// The temporary name does not end in .ltx, so listings ignore it.
func (s *FileStore) Put(ctx context.Context, f FileInfo, r io.Reader) error {
	s.stats.puts.Add(1)
	dir := s.levelDir(f.Level)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("put %s: %w", f, err)
	}
	tmp, err := durable.CreateTemp(dir, "."+f.Name()+".*.tmp")
	if err != nil {
		return fmt.Errorf("put %s: %w", f, err)
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		return fmt.Errorf("put %s: write: %w", f, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("put %s: sync: %w", f, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("put %s: %w", f, err)
	}
	if err := os.Rename(tmp.Name(), s.path(f)); err != nil {
		return fmt.Errorf("put %s: %w", f, err)
	}
	return durable.SyncDir(dir)
}

func (s *FileStore) Delete(ctx context.Context, f FileInfo) error {
	if err := os.Remove(s.path(f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", f, err)
	}
	return nil
}

func sortFiles(files []FileInfo) {
	sort.Slice(files, func(i, j int) bool {
		if files[i].MinTXID != files[j].MinTXID {
			return files[i].MinTXID < files[j].MinTXID
		}
		return files[i].MaxTXID < files[j].MaxTXID
	})
}
