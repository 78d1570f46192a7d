package store

import (
	"context"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Where in the bucket the levels are.
//
// walrust's publisher, and Litestream configured with
// `url: s3://bucket/app`, write "app/<level as %04x>/<name>". But Litestream
// v0.5 builds every key as its configured path + "/" + "%04x/<name>" with
// the path exactly as given (s3/replica_client.go: OpenLTXFile,
// WriteLTXFile, newFileIterator, all `c.Path + "/" + ...`), and the YAML
// form takes `path:` verbatim (cmd/litestream/main.go
// NewS3ReplicaClientFromConfig), so:
//
//	path: /app        "/app/0000/…"   (a common way to write it)
//	path: app/        "app//0000/…"
//	no path           "/0000/…"
//	url: s3://bucket  "./0000/…"      (its path cleans to ".")
//
// AWS S3 keeps such keys as they are; servers that map keys to files (the
// posix backend of versitygw, MinIO) clean them to the plain layout. So a
// store looks for its levels under each of these key prefixes and keeps the
// first that holds a level directory. Until one does (a store nothing has
// been written to yet), every listing looks again.

// baseRoots are the key prefixes probed first, most likely first: the plain
// layout, then Litestream's `path: /app`. At the bucket's root, listing ""
// also shows the "/" and "./" prefixes.
func (s *S3Store) baseRoots() []string {
	if s.prefix == "" {
		return []string{""}
	}
	return []string{s.prefix + "/", "/" + s.prefix + "/"}
}

// keyBase is the key prefix the levels are under, and whether it has been
// found; before it has, the plain layout's.
func (s *S3Store) keyBase() (string, bool) {
	s.baseMu.Lock()
	defer s.baseMu.Unlock()
	if s.baseFound {
		return s.base, true
	}
	return s.baseRoots()[0], false
}

// settleBase makes the plain layout the store's for good (the publisher
// writes there).
func (s *S3Store) settleBase() {
	s.baseMu.Lock()
	defer s.baseMu.Unlock()
	if !s.baseFound {
		s.base, s.baseFound = s.baseRoots()[0], true
	}
}

// resolveBase finds the key prefix the levels are under: one LIST (with a
// delimiter) per prefix probed, usually just one, and none once found. ok
// is false while no probed prefix holds a level directory.
func (s *S3Store) resolveBase(ctx context.Context) (base string, ok bool, err error) {
	s.baseMu.Lock()
	defer s.baseMu.Unlock()
	if s.baseFound {
		return s.base, true, nil
	}
	var more []string // Litestream's other layouts, seen as sub-prefixes
	for _, root := range s.baseRoots() {
		dirs, err := s.listDirs(ctx, root)
		if err != nil {
			return "", false, err
		}
		if hasLevelDir(root, dirs) {
			s.base, s.baseFound = root, true
			return root, true, nil
		}
		for _, d := range dirs {
			switch rest := d[len(root):]; {
			case root == "" && (rest == "/" || rest == "./"): // no path; url: s3://bucket
				more = append(more, d)
			case root != "" && rest == "/": // path: app/ or /app/
				more = append(more, d)
			}
		}
	}
	for _, root := range more {
		dirs, err := s.listDirs(ctx, root)
		if err != nil {
			return "", false, err
		}
		if hasLevelDir(root, dirs) {
			s.base, s.baseFound = root, true
			return root, true, nil
		}
	}
	return "", false, nil
}

// listDirs lists the "directories" right under prefix (common prefixes at
// the next "/"): one request, its first page. Level directories sort near
// the start, after "/" and ".", so a page is enough to find them.
func (s *S3Store) listDirs(ctx context.Context, prefix string) ([]string, error) {
	s.stats.lists.Add(1)
	out, err := s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket:    aws.String(s.bucket),
		Prefix:    aws.String(prefix),
		Delimiter: aws.String("/"),
	})
	if err != nil {
		return nil, err
	}
	dirs := make([]string, 0, len(out.CommonPrefixes))
	for _, cp := range out.CommonPrefixes {
		if p := aws.ToString(cp.Prefix); strings.HasPrefix(p, prefix) {
			dirs = append(dirs, p)
		}
	}
	return dirs, nil
}

// hasLevelDir reports whether dirs (listed under base) hold a level
// directory: base followed by four lower-case hex digits and "/".
func hasLevelDir(base string, dirs []string) bool {
	for _, d := range dirs {
		rest := d[len(base):]
		if len(rest) == 5 && rest[4] == '/' && isLowerHex(rest[:4]) {
			return true
		}
	}
	return false
}

func isLowerHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
