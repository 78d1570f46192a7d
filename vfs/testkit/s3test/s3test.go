// Package s3test runs a real S3 server (versitygw, posix backend) on a
// loopback port for tests, and counts the requests it serves.
//
// The Makefile installs versitygw under $WALRUST_BUILD/bin (`make tools`).
// When it is missing, Start skips the test, or fails it when CI=true.
package s3test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walrust/walrust/vfs/store"
)

// Region is the region versitygw answers for (its default).
const Region = "us-east-1"

// Server is one versitygw process serving the buckets under Dir.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	Addr      string // 127.0.0.1:PORT
	AccessKey string // root credentials
	SecretKey string
	Dir       string // posix root: each sub-directory is a bucket, each file below it an object
	CAFile    string // StartTLS: PEM of the self-signed certificate the server presents

	tb      testing.TB
	bin     string
	iamDir  string
	logPath string // versitygw's stdout: one line per request, appended across restarts
	keyFile string // StartTLS: the certificate's private key
	client  *http.Client

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Request is one request as versitygw logged it.
type Request struct {
	Status int
	Method string
	Path   string // path-style: /bucket/key
	Query  string // raw query (versitygw redacts credential-bearing parameters)
	Kind   string // LIST, GET, HEAD, PUT, POST, DELETE or OTHER
}

// Binary returns the versitygw executable tests should use, or "" when there
// is none: $WALRUST_BUILD/bin/versitygw, then <repo root>/build/bin/versitygw,
// then versitygw on PATH.
func Binary() string {
	var candidates []string
	if b := os.Getenv("WALRUST_BUILD"); b != "" {
		candidates = append(candidates, filepath.Join(b, "bin", "versitygw"))
	}
	if root := repoRoot(); root != "" {
		candidates = append(candidates, filepath.Join(root, "build", "bin", "versitygw"))
	}
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return c
		}
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	return ""
}

// repoRoot walks up from the working directory (a package directory under
// `go test`) to the directory holding go.mod.
func repoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Start runs versitygw on a free loopback port with a fresh temporary
// directory, creates the named buckets, and stops the server when the test
// ends. Without a versitygw binary it skips the test (fails it when CI=true).
func Start(tb testing.TB, buckets ...string) *Server {
	tb.Helper()
	return start(tb, false, buckets)
}

// StartTLS is Start with HTTPS, on a self-signed certificate for 127.0.0.1
// whose PEM is at CAFile: clients trust it only through AWS_CA_BUNDLE.
func StartTLS(tb testing.TB, buckets ...string) *Server {
	tb.Helper()
	return start(tb, true, buckets)
}

func start(tb testing.TB, useTLS bool, buckets []string) *Server {
	tb.Helper()
	bin := Binary()
	if bin == "" {
		msg := "versitygw not found in $WALRUST_BUILD/bin, build/bin or PATH: run `make tools`"
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	base := tempDir(tb)
	s := &Server{
		AccessKey: "WALRUSTTEST" + randomHex(4),
		SecretKey: "secret-" + randomHex(16),
		Dir:       filepath.Join(base, "data"),
		tb:        tb,
		bin:       bin,
		iamDir:    filepath.Join(base, "iam"),
		logPath:   filepath.Join(base, "versitygw.log"),
	}
	for _, d := range []string{s.Dir, s.iamDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	s.client = &http.Client{Timeout: time.Second}
	scheme := "http://"
	if useTLS {
		s.CAFile = filepath.Join(base, "cert.pem")
		s.keyFile = filepath.Join(base, "key.pem")
		pool, err := writeSelfSigned(s.CAFile, s.keyFile)
		if err != nil {
			tb.Fatalf("s3test: certificate: %v", err)
		}
		s.client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
		scheme = "https://"
	}
	tb.Cleanup(s.Stop)

	// The port is free when we pick it but another process may take it
	// before versitygw binds; try a few.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var port int
		if port, err = freePort(); err != nil {
			break
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.Endpoint = scheme + s.Addr
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		tb.Fatalf("s3test: start versitygw: %v", err)
	}
	for _, b := range buckets {
		s.CreateBucket(b)
	}
	return s
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// start launches versitygw on s.Addr and waits until it answers HTTP.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("already running")
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child keeps its own descriptor
	args := []string{
		"--access", s.AccessKey, "--secret", s.SecretKey,
		"--port", s.Addr,
		"--region", Region,
		"--iam-dir", s.iamDir,
		"--keep-alive",
	}
	if s.CAFile != "" {
		args = append(args, "--cert", s.CAFile, "--key", s.keyFile)
	}
	cmd := exec.Command(s.bin, append(args, "posix", s.Dir)...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	setPdeathsig(cmd)
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // its exit status is of no interest: Stop kills it
		close(done)
	}()
	s.cmd, s.done = cmd, done

	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-done:
			s.cmd, s.done = nil, nil
			return fmt.Errorf("versitygw exited at start:\n%s", s.logTail())
		default:
		}
		resp, err := s.client.Get(s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			s.client.CloseIdleConnections()
			return nil // any HTTP answer (403 without credentials) means it serves
		}
		if time.Now().After(deadline) {
			s.stopLocked()
			return fmt.Errorf("versitygw did not answer on %s within 15s: %v\n%s", s.Addr, err, s.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Stop kills the server (SIGKILL: an outage, not a graceful shutdown) and
// waits for it to exit. Its directory and request log stay. Stopping a
// stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Server) stopLocked() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill() // fails only if it already exited
	<-s.done
	s.cmd, s.done = nil, nil
}

// Restart stops the server if it runs and starts it again on the same port
// with the same directory.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	var err error
	// The port was ours a moment ago; a bind can still fail briefly.
	for attempt := 0; attempt < 20; attempt++ {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.tb.Fatalf("s3test: restart versitygw on %s: %v", s.Addr, err)
}

// CreateBucket makes a bucket by creating its directory, which is all the
// posix backend needs.
func (s *Server) CreateBucket(name string) {
	s.tb.Helper()
	if err := os.MkdirAll(filepath.Join(s.Dir, name), 0o755); err != nil {
		s.tb.Fatalf("s3test: create bucket %s: %v", name, err)
	}
}

// WriteObject puts an object directly into the server's directory, which
// versitygw serves as is: far faster than PUT requests for bulk setup.
func (s *Server) WriteObject(bucket, key string, data []byte) {
	s.tb.Helper()
	p := filepath.Join(s.Dir, bucket, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		s.tb.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		s.tb.Fatal(err)
	}
}

// AddUser creates a non-root account (role "user") through the admin API.
// Such a user may access only buckets it owns, so any request it makes on
// the root's buckets is denied.
func (s *Server) AddUser(access, secret string) {
	s.tb.Helper()
	args := []string{"admin", "--access", s.AccessKey, "--secret", s.SecretKey, "--endpoint-url", s.Endpoint}
	if s.CAFile != "" {
		args = append(args, "--allow-insecure") // our own certificate, on loopback
	}
	args = append(args, "create-user", "--access", access, "--secret", secret, "--role", "user")
	out, err := exec.Command(s.bin, args...).CombinedOutput()
	if err != nil {
		s.tb.Fatalf("s3test: create user: %v: %s", err, out)
	}
}

// URL is the walrust source URL of a prefix in a bucket: s3://bucket/prefix.
func (s *Server) URL(bucket, prefix string) string {
	prefix = strings.Trim(prefix, "/")
	if prefix == "" {
		return "s3://" + bucket
	}
	return "s3://" + bucket + "/" + prefix
}

// Options are the store options that reach this server: its endpoint,
// path-style addressing, its region.
func (s *Server) Options() store.Options {
	pathStyle := true
	return store.Options{Endpoint: s.Endpoint, Region: Region, PathStyle: &pathStyle}
}

// Env points the AWS credential chain at this server's root account for the
// rest of the test (t.Setenv, so not with t.Parallel), and shields it from
// the developer's own AWS configuration: no profile, no shared files, no
// session token, no endpoint variables.
func (s *Server) Env(t testing.TB) {
	t.Helper()
	SetEnv(t, s.AccessKey, s.SecretKey)
}

// SetEnv sets the given credentials, Region, and an otherwise empty AWS
// environment for the rest of the test.
func SetEnv(t testing.TB, accessKey, secretKey string) {
	t.Helper()
	none := filepath.Join(t.TempDir(), "no-aws-config")
	t.Setenv("AWS_ACCESS_KEY_ID", accessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secretKey)
	t.Setenv("AWS_REGION", Region)
	t.Setenv("AWS_CONFIG_FILE", none)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", none)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, k := range []string{"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
		"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE",
		"LITESTREAM_ACCESS_KEY_ID", "LITESTREAM_SECRET_ACCESS_KEY"} {
		Unsetenv(t, k)
	}
}

// Unsetenv removes an environment variable for the rest of the test and
// restores it afterwards.
func Unsetenv(t testing.TB, key string) {
	t.Helper()
	t.Setenv(key, "") // registers the restore
	os.Unsetenv(key)
}

// Requests returns every request the server has logged so far, across
// restarts. versitygw writes a request's log line once its handler returns,
// which can be after the client has read the whole response: a request the
// client has seen answered may not be here yet (AwaitRequests waits).
func (s *Server) Requests() []Request {
	s.tb.Helper()
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		s.tb.Fatalf("s3test: read request log: %v", err)
	}
	var reqs []Request
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if r, ok := ParseLogLine(sc.Text()); ok {
			reqs = append(reqs, r)
		}
	}
	return reqs
}

// AwaitRequests returns the requests logged after the first mark ones, once
// there are at least n of them or 3 s have passed.
func (s *Server) AwaitRequests(mark, n int) []Request {
	s.tb.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		reqs := s.Requests()[mark:]
		if len(reqs) >= n || time.Now().After(deadline) {
			return reqs
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// CountRequests counts the logged requests of one Kind ("" counts all).
func (s *Server) CountRequests(kind string) int {
	s.tb.Helper()
	n := 0
	for _, r := range s.Requests() {
		if kind == "" || r.Kind == kind {
			n++
		}
	}
	return n
}

// ParseLogLine parses one line of versitygw's request log:
//
//	15:04:05 | vgw | 200 |  1.2ms | 127.0.0.1 | GET | /bucket | - | list-type=2&prefix=app%2F
//
// Lines that are not request lines (the start banner) return ok=false.
func ParseLogLine(line string) (Request, bool) {
	f := strings.Split(line, " | ")
	if len(f) < 9 || strings.TrimSpace(f[1]) != "vgw" {
		return Request{}, false
	}
	status, err := strconv.Atoi(strings.TrimSpace(f[2]))
	if err != nil {
		return Request{}, false
	}
	r := Request{
		Status: status,
		Method: strings.TrimSpace(f[5]),
		Path:   strings.TrimSpace(f[6]),
		Query:  strings.TrimSpace(f[len(f)-1]),
	}
	r.Kind = kindOf(r.Method, r.Path, r.Query)
	return r, true
}

// kindOf classifies a path-style request by what it does to objects.
func kindOf(method, path, query string) string {
	bucketAndKey := strings.TrimPrefix(path, "/")
	bucket, key, _ := strings.Cut(bucketAndKey, "/")
	switch {
	case bucket == "":
		return "OTHER" // ListBuckets, admin API
	case key == "":
		if method == http.MethodGet && isListQuery(query) {
			return "LIST"
		}
		return "OTHER" // bucket-level requests
	}
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPost, http.MethodDelete:
		return method
	}
	return "OTHER"
}

// isListQuery tells a ListObjects(V2) query from a bucket sub-resource
// request such as ?location or ?versioning.
func isListQuery(query string) bool {
	if query == "" {
		return true
	}
	for _, kv := range strings.Split(query, "&") {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "list-type", "prefix", "delimiter", "max-keys", "start-after", "continuation-token",
			"marker", "encoding-type", "fetch-owner":
		default:
			return false
		}
	}
	return true
}

// LogText returns the raw request log, for failure messages.
func (s *Server) LogText() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// writeSelfSigned writes a self-signed certificate for 127.0.0.1 and
// localhost, valid for a day, and its key, and returns a pool that trusts it.
func writeSelfSigned(certFile, keyFile string) (*x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "walrust s3test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return pool, nil
}
