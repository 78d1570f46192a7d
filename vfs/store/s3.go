package store

import (
	"context"
	"fmt"
	"net/url"
)

// OpenS3 opens an S3 store. Placeholder until the S3 issue lands.
func OpenS3(ctx context.Context, u *url.URL, opts Options) (Store, error) {
	return nil, fmt.Errorf("source %s: s3 sources are not supported yet", u.Redacted())
}
