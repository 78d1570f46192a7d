package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// A Lister is a store that can name the databases stored under it: a
// prefix (a directory) whose immediate sub-prefixes each hold one
// database's LTX levels, the way one Litestream configuration replicates
// many databases to s3://bucket/tenants/<name>. Both stores walrust knows
// are Listers.
type Lister interface {
	// ListDatabases names the sub-prefixes that hold LTX levels
	// (<name>/ltx/<level> in a directory, <name>/<level as %04x>/ in S3),
	// sorted. Anything else under the prefix is ignored.
	ListDatabases(ctx context.Context) ([]string, error)
}

// ListDatabases names the databases stored under st's prefix (see Lister).
func ListDatabases(ctx context.Context, st Reader) ([]string, error) {
	l, ok := st.(Lister)
	if !ok {
		return nil, fmt.Errorf("%s: this store cannot list the databases under it", st)
	}
	return l.ListDatabases(ctx)
}

// databaseName says whether a sub-prefix's name can name a database (and
// a local file <name>.db): not empty, not hidden, no separator.
func databaseName(name string) bool {
	return name != "" && !strings.HasPrefix(name, ".") && !strings.ContainsAny(name, `/\`)
}

// ListDatabases lists the directories under the store's root that hold an
// ltx/ directory. It reads the root (bounded as a level is) and stats one
// path per directory.
func (s *FileStore) ListDatabases(ctx context.Context) ([]string, error) {
	s.stats.lists.Add(1)
	entries, err := readDirBounded(s.root)
	switch {
	case errors.Is(err, errListTooLong):
		return nil, errTooMany("list " + s.String())
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("list %s: directory does not exist: %w", s, ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("list %s: %w", s, err)
	}
	var names []string
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !e.IsDir() || !databaseName(e.Name()) {
			continue
		}
		if fi, err := os.Stat(filepath.Join(s.root, e.Name(), "ltx")); err == nil && fi.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// ListDatabases lists the prefix's sub-prefixes (ListObjectsV2 with
// Delimiter "/", every page, bounded as a level is) and keeps those that
// hold a level directory: one more request per sub-prefix the first time
// it is seen, none after (a database does not stop being one).
func (s *S3Store) ListDatabases(ctx context.Context) ([]string, error) {
	root := ""
	if s.prefix != "" {
		root = s.prefix + "/"
	}
	op := "list " + s.String()
	in := &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(root), Delimiter: aws.String("/")}
	if s.maxKeys > 0 {
		in.MaxKeys = aws.Int32(s.maxKeys)
	}
	var subs []string
	err := s.listPages(ctx, in, op, func(out *s3.ListObjectsV2Output) {
		for _, cp := range out.CommonPrefixes {
			name, ok := strings.CutPrefix(aws.ToString(cp.Prefix), root)
			if name, ok = strings.CutSuffix(name, "/"); ok && databaseName(name) {
				subs = append(subs, name)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, name := range subs {
		s.dbsMu.Lock()
		known := s.dbs[name]
		s.dbsMu.Unlock()
		if !known {
			dirs, err := s.listDirs(ctx, root+name+"/")
			if err != nil {
				return nil, s.wrapErr(op, "", err)
			}
			if !hasLevelDir(root+name+"/", dirs) {
				continue
			}
			s.dbsMu.Lock()
			if s.dbs == nil {
				s.dbs = map[string]bool{}
			}
			s.dbs[name] = true
			s.dbsMu.Unlock()
		}
		names = append(names, name)
	}
	sort.Strings(names)
	return names, nil
}
