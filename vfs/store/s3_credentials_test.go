package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/s3test"
)

// TestS3LitestreamCredentials: LITESTREAM_ACCESS_KEY_ID and
// LITESTREAM_SECRET_ACCESS_KEY are the credentials when AWS_ACCESS_KEY_ID
// and AWS_SECRET_ACCESS_KEY are not set, and are ignored when they are.
func TestS3LitestreamCredentials(t *testing.T) {
	srv := s3test.Start(t, "bkt")
	ctx := context.Background()
	openWith := func(t *testing.T, awsID, awsSecret, lsID, lsSecret string) error {
		t.Helper()
		srv.Env(t)
		for k, v := range map[string]string{
			"AWS_ACCESS_KEY_ID": awsID, "AWS_SECRET_ACCESS_KEY": awsSecret,
			"LITESTREAM_ACCESS_KEY_ID": lsID, "LITESTREAM_SECRET_ACCESS_KEY": lsSecret,
		} {
			if v == "" {
				s3test.Unsetenv(t, k)
			} else {
				t.Setenv(k, v)
			}
		}
		_, err := store.Open(ctx, srv.URL("bkt", "app"), srv.Options())
		return err
	}
	t.Run("Litestream's alone", func(t *testing.T) {
		if err := openWith(t, "", "", srv.AccessKey, srv.SecretKey); err != nil {
			t.Errorf("open with only LITESTREAM_* credentials: %v", err)
		}
	})
	t.Run("AWS's win", func(t *testing.T) {
		if err := openWith(t, srv.AccessKey, srv.SecretKey, "NOSUCHKEY", "wrong-secret-5678"); err != nil {
			t.Errorf("open with right AWS_* and wrong LITESTREAM_* credentials: %v", err)
		}
		err := openWith(t, "NOSUCHKEY", "wrong-secret-5678", srv.AccessKey, srv.SecretKey)
		if !errors.Is(err, store.ErrAccessDenied) {
			t.Errorf("open with wrong AWS_* and right LITESTREAM_* credentials: %v; want access denied (AWS_* win)", err)
		}
	})
	t.Run("half a pair", func(t *testing.T) {
		// Litestream's pair is used whole or not at all.
		err := openWith(t, "", "", srv.AccessKey, "")
		if err == nil || !strings.Contains(err.Error(), "LITESTREAM_ACCESS_KEY_ID") {
			t.Errorf("open with LITESTREAM_ACCESS_KEY_ID alone: %v; want no credentials, naming Litestream's variables", err)
		}
	})
}
