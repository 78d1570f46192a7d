package store

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/logging"
	"github.com/superfly/ltx"
)

// Tuning of the S3 client. Every request is also bounded by its context.
const (
	s3MaxAttempts    = 5 // per request, first attempt included
	s3BaseBackoff    = 100 * time.Millisecond
	s3MaxBackoff     = 4 * time.Second  // full jitter, exponential up to this
	s3ConnectTimeout = 10 * time.Second // TCP connect
	s3DefaultRegion  = "us-east-1"      // for custom endpoints that name none

	// Bodies above this size are uploaded in parts of this size: a single
	// PUT is limited to 5 GiB and is resent whole when it fails.
	s3DefaultPartSize = 64 << 20
	s3MinPartSize     = 5 << 20 // S3's minimum for all parts but the last

	// Put bodies up to this size are held in memory; larger ones are spooled
	// to a temporary file, so that a retry can send them again.
	s3MemSpoolLimit = 1 << 20

	// Open resumes a body that breaks mid-stream with a ranged GET, up to
	// this many times in a row without progress.
	s3MaxResumes = 5
)

// s3ReadTimeout is how long a connection may stay silent (waiting for
// response headers, or in the middle of a body) before it is dropped and the
// request retried or the body resumed. A variable for tests.
var s3ReadTimeout = 30 * time.Second

// S3Store is a prefix of an S3 (or S3-compatible) bucket in Litestream v0.5's
// layout: <prefix>/<level as %04x>/<min>-<max>.ltx, or one of the other key
// forms Litestream's configuration can give it (s3_base.go).
type S3Store struct {
	client   *s3.Client
	bucket   string
	prefix   string // no leading or trailing slash; "" for the bucket's root
	endpoint string // custom endpoint, "" for AWS
	region   string
	stats    counters

	// base is the key prefix the levels are under, once found (s3_base.go).
	baseMu    sync.Mutex
	base      string
	baseFound bool

	// dbs are the sub-prefixes ListDatabases found to hold levels.
	dbsMu sync.Mutex
	dbs   map[string]bool

	// Test hooks.
	maxKeys  int32 // keys per LIST page; 0 = the server's default (1000)
	partSize int64
}

// s3Scheme is s3://bucket/prefix: an S3 or S3-compatible bucket.
var s3Scheme = scheme{
	form: "s3://bucket/prefix",
	check: func(u *url.URL) error {
		if u.Host == "" || u.Opaque != "" {
			return errors.New("an S3 source is s3://bucket or s3://bucket/prefix")
		}
		return nil
	},
	canonical: func(u *url.URL) string {
		c := "s3://" + u.Host
		if p := strings.Trim(path.Clean("/"+u.Path), "/"); p != "" {
			c += "/" + escapePath(p)
		}
		if u.RawQuery != "" {
			c += "?" + u.RawQuery
		}
		return c
	},
	open: OpenS3,
}

// OpenS3 opens s3://bucket/prefix. Credentials, region and endpoint come from
// the environment the way AWS tools find them (AWS_* variables, shared config
// and AWS_PROFILE, container and instance roles, AWS_ENDPOINT_URL_S3,
// AWS_CA_BUNDLE); opts, or the URL's endpoint, region and path_style query
// parameters, override them. With a custom endpoint, path-style addressing
// and region us-east-1 are the defaults.
//
// OpenS3 makes one request, listing at most one key under the prefix, so that
// a missing bucket or bad credentials fail here and not at the first poll.
func OpenS3(ctx context.Context, u *url.URL, opts Options) (Store, error) {
	s, err := openS3(ctx, u, opts)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func openS3(ctx context.Context, u *url.URL, opts Options) (*S3Store, error) {
	bucket, prefix, opts, err := parseS3URL(u, opts)
	if err != nil {
		return nil, err
	}
	s := &S3Store{bucket: bucket, prefix: prefix, partSize: s3DefaultPartSize}
	if opts.Endpoint != "" {
		if s.endpoint, err = normalizeEndpoint(opts.Endpoint); err != nil {
			return nil, fmt.Errorf("%s: %w", s, err)
		}
	}

	c, err := opts.Clients.get(ctx, s, opts)
	if err != nil {
		return nil, err
	}
	s.client, s.endpoint, s.region = c.client, c.endpoint, c.region
	lastAttempt := c.lastAttempt

	// One cheap request: is the bucket there, and may we list it? It also
	// finds where the levels are, if anything has been written yet.
	if _, _, err := s.resolveBase(ctx); err != nil {
		if last := lastAttempt.Load(); last != nil && ctx.Err() != nil {
			err = fmt.Errorf("%w (the last attempt: %w)", err, *last)
		}
		return nil, s.wrapErr(s.String(), "", err)
	}
	return s, nil
}

// An s3Client is a client for one endpoint and region, with what opening
// it found: the endpoint (redacted) and region it uses.
type s3Client struct {
	client           *s3.Client
	endpoint, region string
	// lastAttempt is the error of the last failed attempt of a request
	// (see openS3); shared by the stores that share the client.
	lastAttempt *atomic.Pointer[error]
}

// newS3Client makes the client of a store: s has its endpoint (normalized,
// or "") and names it in messages.
func newS3Client(ctx context.Context, s *S3Store, opts Options) (*s3Client, error) {
	// lastAttempt is the error of the open's last failed attempt: when
	// ctx ends during the retries, the SDK reports only that, and the
	// attempts' error (a refused connection) is what a person needs.
	c := &s3Client{lastAttempt: new(atomic.Pointer[error])}
	lastAttempt := c.lastAttempt
	httpClient := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = s3ConnectTimeout }).
		WithReadTimeout(s3ReadTimeout)
	loadOpts := []func(*config.LoadOptions) error{
		// The SDK's own client, never a plain *http.Client: with
		// AWS_CA_BUNDLE set, the SDK adds the bundle to its transport and
		// refuses any client it cannot configure.
		config.WithHTTPClient(httpClient),
		config.WithRetryer(func() aws.Retryer { return noteRetryer{newS3Retryer(), lastAttempt} }),
		config.WithLogger(slogLogger{}),
	}
	if opts.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(opts.Region))
	}
	if creds, ok := litestreamCredentials(os.Getenv); ok {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(creds))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, &s3Error{msg: fmt.Sprintf("%s: load AWS configuration: %v", s, err), kind: ErrBadConfig, cause: err}
	}

	var regionErr error
	c.client = s3.NewFromConfig(cfg, func(o *s3.Options) {
		// o.BaseEndpoint already holds AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL
		// or the shared config's endpoint_url, if any; ours wins.
		if s.endpoint != "" {
			o.BaseEndpoint = aws.String(s.endpoint)
		}
		custom := o.BaseEndpoint != nil && *o.BaseEndpoint != ""
		if custom {
			s.endpoint = redactEndpoint(*o.BaseEndpoint)
			o.UsePathStyle = true
			// S3-compatible servers often reject the aws-chunked trailing
			// checksums the SDK sends by default; LTX files carry their own
			// checksums. The environment still decides if it says anything.
			if os.Getenv("AWS_REQUEST_CHECKSUM_CALCULATION") == "" {
				o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			}
		}
		if opts.PathStyle != nil {
			o.UsePathStyle = *opts.PathStyle
		}
		if os.Getenv("AWS_RESPONSE_CHECKSUM_VALIDATION") == "" {
			// Validation would only cover objects uploaded with a checksum,
			// and warns on stderr about every other one.
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
		if o.Region == "" {
			if custom {
				o.Region = s3DefaultRegion
			} else {
				regionErr = &s3Error{
					msg:  fmt.Sprintf("%s: no AWS region: set AWS_REGION, a region in the AWS profile, or region=<bucket's region> in the source URI", s),
					kind: ErrBadConfig,
				}
			}
		}
		s.region = o.Region
	})
	if regionErr != nil {
		return nil, regionErr
	}

	// Resolve credentials now, so that having none fails the open with a
	// message that says so.
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: get AWS credentials: %w", s, err)
		}
		return nil, &s3Error{
			msg:   fmt.Sprintf("%s: no usable AWS credentials (looked in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, LITESTREAM_ACCESS_KEY_ID/LITESTREAM_SECRET_ACCESS_KEY, shared config and AWS_PROFILE, container and instance roles): %v", s, err),
			kind:  ErrAccessDenied,
			cause: err,
		}
	}

	c.endpoint, c.region = s.endpoint, s.region
	return c, nil
}

// litestreamCredentials are Litestream's credential variables,
// LITESTREAM_ACCESS_KEY_ID and LITESTREAM_SECRET_ACCESS_KEY, so that a
// Litestream setup's environment works as it is. They come right after
// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, as in Litestream: when
// those are both set, they win and ok is false; otherwise, with both of
// Litestream's set, they are the credentials (ahead of profiles and
// roles). Pairs are never mixed.
func litestreamCredentials(getenv func(string) string) (_ aws.CredentialsProvider, ok bool) {
	if getenv("AWS_ACCESS_KEY_ID") != "" && getenv("AWS_SECRET_ACCESS_KEY") != "" {
		return nil, false
	}
	id, secret := getenv("LITESTREAM_ACCESS_KEY_ID"), getenv("LITESTREAM_SECRET_ACCESS_KEY")
	if id == "" || secret == "" {
		return nil, false
	}
	creds := aws.Credentials{AccessKeyID: id, SecretAccessKey: secret, Source: "LITESTREAM_ACCESS_KEY_ID"}
	return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return creds, nil }), true
}

// parseS3URL takes the bucket and prefix from s3://bucket/prefix, and fills
// the options it leaves empty from the URL's query parameters.
func parseS3URL(u *url.URL, opts Options) (bucket, prefix string, _ Options, _ error) {
	if u.User != nil {
		return "", "", opts, fmt.Errorf("source s3://%s%s: credentials do not belong in the URL; use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or an AWS profile", u.Host, u.EscapedPath())
	}
	bucket = u.Host
	if bucket == "" || u.Opaque != "" {
		return "", "", opts, fmt.Errorf("source %s: an S3 source is s3://bucket or s3://bucket/prefix", u.Redacted())
	}
	if strings.ContainsAny(bucket, ":/") {
		return "", "", opts, fmt.Errorf("source %s: %q is not a bucket name", u.Redacted(), bucket)
	}
	prefix = strings.Trim(path.Clean("/"+u.Path), "/")

	q := u.Query()
	for k := range q {
		switch k {
		case "endpoint", "region", "path_style":
		default:
			return "", "", opts, fmt.Errorf("source s3://%s/%s: unknown parameter %q (known: endpoint, region, path_style)", bucket, prefix, k)
		}
	}
	if opts.Endpoint == "" {
		opts.Endpoint = q.Get("endpoint")
	}
	if opts.Region == "" {
		opts.Region = q.Get("region")
	}
	if opts.PathStyle == nil && q.Has("path_style") {
		v, err := strconv.ParseBool(q.Get("path_style"))
		if err != nil {
			return "", "", opts, fmt.Errorf("source s3://%s/%s: path_style=%q: want true or false", bucket, prefix, q.Get("path_style"))
		}
		opts.PathStyle = &v
	}
	return bucket, prefix, opts, nil
}

// normalizeEndpoint accepts http(s)://host[:port][/path] or a bare
// host[:port] (http for loopback hosts, https otherwise).
func normalizeEndpoint(e string) (string, error) {
	if !strings.Contains(e, "://") {
		host := e
		if h, _, err := net.SplitHostPort(e); err == nil {
			host = h
		}
		scheme := "https://"
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			scheme = "http://"
		}
		e = scheme + e
	}
	u, err := url.Parse(e)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, user info and all
		}
		return "", fmt.Errorf("endpoint: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("endpoint %q: scheme must be http or https", redactEndpoint(e))
	}
	if u.Host == "" {
		return "", fmt.Errorf("endpoint %q: no host", redactEndpoint(e))
	}
	if u.User != nil {
		return "", fmt.Errorf("endpoint %q: credentials do not belong in the endpoint", redactEndpoint(e))
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// redactEndpoint hides any user info in an endpoint URL.
func redactEndpoint(e string) string {
	u, err := url.Parse(e)
	if err != nil || u.User == nil {
		return e
	}
	u.User = nil
	return u.String()
}

// newS3Retryer retries timeouts, 5xx, throttling, dropped and refused
// connections with exponential backoff and full jitter. Without a retry
// quota: a follower that polls one store should not find retries switched
// off after an outage; its own polling loop backs off further.
func newS3Retryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = s3MaxAttempts
		o.MaxBackoff = s3MaxBackoff
		o.BaseDelay = s3BaseBackoff
		o.RateLimiter = ratelimit.None
		// The SDK retries every failure to send a request; an untrusted
		// certificate will not become trusted by trying again.
		o.Retryables = append([]retry.IsErrorRetryable{retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
			var certErr *tls.CertificateVerificationError
			if errors.As(err, &certErr) {
				return aws.FalseTernary
			}
			return aws.UnknownTernary
		})}, o.Retryables...)
	})
}

// noteRetryer records the error of each failed attempt in last.
type noteRetryer struct {
	aws.Retryer
	last *atomic.Pointer[error]
}

func (r noteRetryer) IsErrorRetryable(err error) bool {
	r.last.Store(&err)
	return r.Retryer.IsErrorRetryable(err)
}

// slogLogger forwards the SDK's few log lines (warnings) to slog.
type slogLogger struct{}

func (slogLogger) Logf(c logging.Classification, format string, v ...interface{}) {
	level := slog.LevelDebug
	if c == logging.Warn {
		level = slog.LevelWarn
	}
	slog.Default().Log(context.Background(), level, "aws-sdk: "+fmt.Sprintf(format, v...), "component", "s3")
}

// String is s3://bucket/prefix: no endpoint, no credentials.
func (s *S3Store) String() string {
	if s.prefix == "" {
		return "s3://" + s.bucket
	}
	return "s3://" + s.bucket + "/" + s.prefix
}

// Endpoint is the custom endpoint in use, "" for AWS itself.
func (s *S3Store) Endpoint() string { return s.endpoint }

// Region is the region requests are signed for.
func (s *S3Store) Region() string { return s.region }

func (s *S3Store) Stats() Stats { return s.stats.snapshot() }

// levelPrefix is "<prefix>/<level as %04x>/" (or the key form Litestream
// used for the prefix, once a listing has found it).
func (s *S3Store) levelPrefix(level int) string {
	base, _ := s.keyBase()
	return base + fmt.Sprintf("%04x/", level)
}

// Key is the object key of an LTX file.
func (s *S3Store) Key(f FileInfo) string {
	return s.levelPrefix(f.Level) + f.Name()
}

func checkLevel(level int) error {
	if level < 0 || level > 0xffff {
		return fmt.Errorf("level %d out of range", level)
	}
	return nil
}

// ListAfter lists one level with StartAfter set past every file whose
// MinTXID is <= after, so that its cost depends on the files after, not on
// how many older files the level keeps: one LIST request unless more than a
// page (1000 keys) is newer.
func (s *S3Store) ListAfter(ctx context.Context, level int, after ltx.TXID) ([]FileInfo, error) {
	op := fmt.Sprintf("list %s L%d", s, level)
	if err := checkLevel(level); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	base, found, err := s.resolveBase(ctx)
	if err != nil {
		return nil, s.wrapErr(op, "", err)
	}
	if !found {
		return nil, nil // no level directory anywhere yet: the store is empty
	}
	lp := base + fmt.Sprintf("%04x/", level)
	in := &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(lp)}
	if after > 0 {
		// Names sort by MinTXID then MaxTXID (fixed-width hex), so every
		// file with MinTXID <= after sorts at or before this key.
		in.StartAfter = aws.String(lp + ltx.FormatFilename(after, ltx.TXID(math.MaxUint64)))
	}
	if s.maxKeys > 0 {
		in.MaxKeys = aws.Int32(s.maxKeys)
	}
	var files []FileInfo
	err = s.listPages(ctx, in, op, func(out *s3.ListObjectsV2Output) {
		for _, obj := range out.Contents {
			name, ok := strings.CutPrefix(aws.ToString(obj.Key), lp)
			if !ok || strings.Contains(name, "/") {
				continue
			}
			if f, ok := parseName(level, name, aws.ToInt64(obj.Size), aws.ToTime(obj.LastModified)); ok && f.MinTXID > after {
				files = append(files, f)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(files, func(i, j int) bool {
		if files[i].MinTXID != files[j].MinTXID {
			return files[i].MinTXID < files[j].MinTXID
		}
		return files[i].MaxTXID < files[j].MaxTXID
	})
	return files, nil
}

// Open streams one object with one GET. If the connection breaks mid-body,
// the reader resumes with a ranged GET from where it stopped (same ETag).
// ctx bounds the whole download, not just the request: reading the body
// after ctx is done fails. A body is never read past f.Size (LimitBody).
func (s *S3Store) Open(ctx context.Context, f FileInfo) (io.ReadCloser, error) {
	op := fmt.Sprintf("open %s %s", s, f)
	if err := checkLevel(f.Level); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	r := &s3Reader{s: s, ctx: ctx, op: op, key: s.Key(f), size: -1, listed: listedSize(f)}
	if err := r.get(); err != nil {
		return nil, err
	}
	return LimitBody(r, f, r.listed), nil
}

// Put uploads one LTX file. S3 makes an object visible only once all of it
// is stored, so readers never see part of one. A body that cannot be read
// again (not an io.ReaderAt and io.Seeker) is first buffered, in memory up to
// 1 MiB, else in a temporary file, so retries can resend it.
func (s *S3Store) Put(ctx context.Context, f FileInfo, r io.Reader) error {
	op := fmt.Sprintf("put %s %s", s, f)
	if err := checkLevel(f.Level); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	body, cleanup, err := replayable(r)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer cleanup()
	s.settleBase() // a store walrust writes to has the plain layout
	key := s.Key(f)
	if body.Size() > s.partSize {
		return s.putMultipart(ctx, op, key, body)
	}
	s.stats.puts.Add(1)
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(key),
		Body:          body,
		ContentLength: aws.Int64(body.Size()),
	})
	if err != nil {
		return s.wrapErr(op, key, err)
	}
	return nil
}

// putMultipart uploads body in parts of s.partSize, one after the other,
// and aborts the upload if any step fails.
func (s *S3Store) putMultipart(ctx context.Context, op, key string, body *io.SectionReader) (err error) {
	s.stats.puts.Add(1)
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(key),
	})
	if err != nil {
		return s.wrapErr(op, key, err)
	}
	uploadID := created.UploadId
	defer func() {
		if err == nil {
			return
		}
		// Abort even if ctx is what failed, so no parts are left billed.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, aerr := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(s.bucket), Key: aws.String(key), UploadId: uploadID,
		}); aerr != nil {
			err = errors.Join(err, fmt.Errorf("%s: abort multipart upload: %w", op, aerr))
		}
	}()

	var parts []types.CompletedPart
	for off, n := int64(0), int32(1); off < body.Size(); off, n = off+s.partSize, n+1 {
		size := min(s.partSize, body.Size()-off)
		s.stats.puts.Add(1)
		out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket:        aws.String(s.bucket),
			Key:           aws.String(key),
			UploadId:      uploadID,
			PartNumber:    aws.Int32(n),
			Body:          io.NewSectionReader(body, off, size),
			ContentLength: aws.Int64(size),
		})
		if err != nil {
			return s.wrapErr(fmt.Sprintf("%s: part %d", op, n), key, err)
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(n)})
	}
	s.stats.puts.Add(1)
	if _, err := s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.bucket),
		Key:             aws.String(key),
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}); err != nil {
		return s.wrapErr(op+": complete multipart upload", key, err)
	}
	return nil
}

// replayable returns r as a reader that can be read again from its start,
// buffering it if it cannot.
func replayable(r io.Reader) (body *io.SectionReader, cleanup func(), err error) {
	nop := func() {}
	if ra, ok := r.(interface {
		io.ReaderAt
		io.Seeker
	}); ok {
		cur, err := ra.Seek(0, io.SeekCurrent)
		if err == nil {
			var end int64
			if end, err = ra.Seek(0, io.SeekEnd); err == nil {
				if _, err = ra.Seek(cur, io.SeekStart); err == nil {
					return io.NewSectionReader(ra, cur, end-cur), nop, nil
				}
			}
		}
		// Not really seekable (a pipe behind an *os.File): buffer it.
	}
	var buf bytes.Buffer
	n, err := io.CopyN(&buf, r, s3MemSpoolLimit+1)
	if err == io.EOF || (err == nil && n <= s3MemSpoolLimit) {
		return io.NewSectionReader(bytes.NewReader(buf.Bytes()), 0, n), nop, nil
	} else if err != nil {
		return nil, nop, fmt.Errorf("read body: %w", err)
	}
	tmp, err := os.CreateTemp("", "walrust-put-*.ltx")
	if err != nil {
		return nil, nop, fmt.Errorf("spool body: %w", err)
	}
	cleanup = func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}
	total, err := io.Copy(tmp, io.MultiReader(&buf, r))
	if err != nil {
		cleanup()
		return nil, nop, fmt.Errorf("spool body to %s: %w", tmp.Name(), err)
	}
	return io.NewSectionReader(tmp, 0, total), cleanup, nil
}

// Delete removes one object; S3 does not mind if it is already gone.
func (s *S3Store) Delete(ctx context.Context, f FileInfo) error {
	op := fmt.Sprintf("delete %s %s", s, f)
	if err := checkLevel(f.Level); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	key := s.Key(f)
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err == nil {
		return nil
	}
	werr := s.wrapErr(op, key, err)
	if errors.Is(werr, ErrNotFound) && !errors.Is(werr, ErrStoreNotFound) {
		return nil // the object, not the bucket, is missing
	}
	return werr
}

// listPages calls page with each page of the listing in (counted in the
// store's stats), following continuation tokens. What the pages hold, and
// the pages themselves, count against maxListed: a server that says there
// is more and gives nothing ends too.
func (s *S3Store) listPages(ctx context.Context, in *s3.ListObjectsV2Input, op string, page func(*s3.ListObjectsV2Output)) error {
	seen := 0
	for {
		s.stats.lists.Add(1)
		out, err := s.client.ListObjectsV2(ctx, in)
		if err != nil {
			return s.wrapErr(op, "", err)
		}
		if seen += len(out.Contents) + len(out.CommonPrefixes) + 1; seen > maxListed {
			return errTooMany(op)
		}
		page(out)
		if !aws.ToBool(out.IsTruncated) {
			return nil
		}
		if aws.ToString(out.NextContinuationToken) == "" {
			return fmt.Errorf("%s: truncated listing without a continuation token", op)
		}
		in.ContinuationToken = out.NextContinuationToken
	}
}
