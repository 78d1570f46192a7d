package store

import (
	"net/url"
	"time"
)

// Test hooks for the S3 store, visible to package store_test.

// SetS3MaxKeys sets how many keys one LIST page may hold.
func SetS3MaxKeys(st Store, n int32) { st.(*S3Store).maxKeys = n }

// SetS3PartSize sets the size above which Put uploads in parts, and the size
// of those parts.
func SetS3PartSize(st Store, n int64) {
	if n < s3MinPartSize {
		panic("S3 parts are at least 5 MiB")
	}
	st.(*S3Store).partSize = n
}

// S3KeyFor is the object key a file has under an s3:// source URL.
func S3KeyFor(rawURL string, f FileInfo) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	bucket, prefix, _, err := parseS3URL(u, Options{})
	if err != nil {
		return "", err
	}
	return (&S3Store{bucket: bucket, prefix: prefix}).Key(f), nil
}

// ParseS3URL exposes the URL parsing of OpenS3.
func ParseS3URL(rawURL string, opts Options) (bucket, prefix string, _ Options, _ error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", "", opts, err
	}
	return parseS3URL(u, opts)
}

// SetS3ReadTimeout changes the read timeout of S3 stores opened from now on
// and returns a function that restores it.
func SetS3ReadTimeout(d time.Duration) (restore func()) {
	old := s3ReadTimeout
	s3ReadTimeout = d
	return func() { s3ReadTimeout = old }
}

// NormalizeEndpoint exposes the endpoint option's parsing.
var NormalizeEndpoint = normalizeEndpoint

// SetMaxListed bounds listings at n objects until restore.
func SetMaxListed(n int) (restore func()) {
	old := maxListed
	maxListed = n
	return func() { maxListed = old }
}
