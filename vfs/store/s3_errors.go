package store

import (
	"crypto/tls"
	"errors"
	"fmt"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

// s3Error is an S3 failure described in plain words. It wraps a kind
// (ErrStoreNotFound, ErrNotFound, ErrAccessDenied, ErrBadConfig) for
// errors.Is and IsPermanent, and the SDK's error for errors.As; its message
// is only the plain description (the SDK's message adds request IDs and
// retry counts, but nothing a person needs to fix these).
type s3Error struct {
	msg   string
	kind  error
	cause error
}

func (e *s3Error) Error() string { return e.msg }

func (e *s3Error) Unwrap() []error {
	var errs []error
	if e.kind != nil {
		errs = append(errs, e.kind)
		if e.kind == ErrStoreNotFound {
			errs = append(errs, ErrNotFound)
		}
	}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

// wrapErr turns an SDK error from operation op (on object key, "" for
// bucket-level requests) into an error that names the problem.
func (s *S3Store) wrapErr(op, key string, err error) error {
	code, status := "", 0
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) && respErr.Response != nil {
		status = respErr.Response.StatusCode
	}
	at := ""
	if s.endpoint != "" {
		at = " at " + s.endpoint
	}
	e := &s3Error{cause: err}
	switch code {
	case "NoSuchBucket":
		e.kind = ErrStoreNotFound
		e.msg = fmt.Sprintf("%s: bucket %q does not exist%s (%s)", op, s.bucket, at, code)
	case "NoSuchKey", "NotFound":
		if key == "" { // HEAD on a bucket answers a bare 404
			e.kind = ErrStoreNotFound
			e.msg = fmt.Sprintf("%s: bucket %q does not exist%s (%s)", op, s.bucket, at, code)
		} else {
			e.kind = ErrNotFound
			e.msg = fmt.Sprintf("%s: object %q not found (%s)", op, key, code)
		}
	case "InvalidAccessKeyId":
		e.kind = ErrAccessDenied
		e.msg = fmt.Sprintf("%s: access denied: the server%s does not know this access key ID; check credentials (%s)", op, at, code)
	case "SignatureDoesNotMatch":
		e.kind = ErrAccessDenied
		e.msg = fmt.Sprintf("%s: access denied: the secret access key does not match the access key ID; check credentials (%s)", op, code)
	case "ExpiredToken", "InvalidToken", "TokenRefreshRequired":
		e.kind = ErrAccessDenied
		e.msg = fmt.Sprintf("%s: access denied: the session token is expired or invalid; check credentials (%s)", op, code)
	case "AccessDenied", "AllAccessDisabled", "Forbidden":
		e.kind = ErrAccessDenied
		e.msg = fmt.Sprintf("%s: access denied to bucket %q: check credentials and the permissions they have (%s)", op, s.bucket, code)
	case "PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException", "IncorrectEndpoint":
		e.kind = ErrBadConfig
		hint := "set AWS_REGION or region=<the bucket's region>"
		if respErr != nil && respErr.Response != nil {
			if r := respErr.Response.Header.Get("X-Amz-Bucket-Region"); r != "" {
				hint = fmt.Sprintf("it is in %s: set AWS_REGION=%s or region=%s", r, r, r)
			}
		}
		e.msg = fmt.Sprintf("%s: bucket %q is not in region %q; %s (%s)", op, s.bucket, s.region, hint, code)
	case "InvalidBucketName":
		e.kind = ErrBadConfig
		e.msg = fmt.Sprintf("%s: %q is not a valid bucket name (%s)", op, s.bucket, code)
	default:
		var certErr *tls.CertificateVerificationError
		if errors.As(err, &certErr) {
			e.kind = ErrBadConfig
			e.msg = fmt.Sprintf("%s: the certificate of %s is not trusted: %v; add its CA to AWS_CA_BUNDLE", op, s.describeEndpoint(), certErr.Err)
			break
		}
		if code == "" && status == 403 {
			e.kind = ErrAccessDenied
			e.msg = fmt.Sprintf("%s: access denied to bucket %q: check credentials and the permissions they have (HTTP 403)", op, s.bucket)
			break
		}
		if status >= 500 { // after every retry: the server is not answering
			e.kind = ErrUnreachable
			e.msg = fmt.Sprintf("%s: %v", op, err)
			break
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	return e
}

// describeEndpoint names the server requests go to.
func (s *S3Store) describeEndpoint() string {
	if s.endpoint != "" {
		return s.endpoint
	}
	return "S3 in " + s.region
}
