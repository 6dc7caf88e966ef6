package uploader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	"golang.org/x/sync/errgroup"
)

// S3Options configure an S3Store. The zero value of every field is its default.
type S3Options struct {
	// Bucket is the bucket name (required).
	Bucket string
	// Endpoint is an S3-compatible endpoint URL (MinIO, R2, Ceph,
	// versitygw). Setting it switches to path-style addressing and to
	// request checksums "when required", which such stores accept.
	// Default: AWS S3.
	Endpoint string
	// Region is the bucket's region. Default: from the AWS config chain,
	// else us-east-1.
	Region string
	// Credentials override the AWS default chain (env, shared profile, SSO,
	// web identity, instance role). Default: the chain.
	Credentials aws.CredentialsProvider
	// MaxAttempts is how many times a request is tried on 5xx, SlowDown
	// and connection errors. Default: 10.
	MaxAttempts int
	// MaxBackoff caps the jittered exponential backoff between attempts.
	// Default: 20s.
	MaxBackoff time.Duration
	// Connections sizes the HTTP connection pool. Default: 64.
	Connections int
	// MultipartThreshold is the size from which a file is uploaded in
	// parts. Default: 64 MiB.
	MultipartThreshold int64
	// PartSize is the multipart part size. Default: 16 MiB.
	PartSize int64
}

// S3Store is a Store backed by the AWS SDK's S3 client.
type S3Store struct {
	client *s3.Client
	creds  aws.CredentialsProvider
	opts   S3Options
	// bodyOpts apply to requests that carry a file's bytes (PutObject,
	// UploadPart); see unsignedPayload.
	bodyOpts []func(*s3.Options)
}

var _ Store = (*S3Store)(nil)

// NewS3Store builds an S3 client from the AWS default configuration chain
// and opts.
func NewS3Store(ctx context.Context, opts S3Options) (*S3Store, error) {
	if opts.Bucket == "" {
		return nil, errors.New("new S3 store: bucket is required")
	}
	if opts.MaxAttempts == 0 {
		opts.MaxAttempts = 10
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 20 * time.Second
	}
	if opts.Connections == 0 {
		opts.Connections = 64
	}
	if opts.MultipartThreshold == 0 {
		opts.MultipartThreshold = 64 << 20
	}
	if opts.PartSize == 0 {
		opts.PartSize = 16 << 20
	}
	if opts.PartSize < 5<<20 {
		return nil, fmt.Errorf("new S3 store: part size %d is below S3's 5 MiB minimum", opts.PartSize)
	}
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConns = opts.Connections
		t.MaxIdleConnsPerHost = opts.Connections
	})
	loadOpts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
		config.WithLogger(logging.Nop{}), // errors come back as values; the SDK must not print
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = opts.MaxAttempts
				o.MaxBackoff = opts.MaxBackoff
				// A deploy is a bounded batch: let every request use its
				// attempts instead of sharing a client-wide retry budget.
				o.RateLimiter = ratelimit.None
			})
		}),
	}
	if opts.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(opts.Region))
	}
	if opts.Credentials != nil {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(opts.Credentials))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS config: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
			o.UsePathStyle = true
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
	})
	st := &S3Store{client: client, creds: cfg.Credentials, opts: opts}
	if unsignedPayload(opts.Endpoint) {
		st.bodyOpts = append(st.bodyOpts, func(o *s3.Options) {
			o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
		})
	}
	return st, nil
}

// unsignedPayload reports whether uploads to endpoint are signed with
// UNSIGNED-PAYLOAD instead of the SHA-256 of the body. SigV4 over plain
// HTTP otherwise makes the client hash every byte before sending and the
// store hash it again to check, which on a loopback store cost more CPU
// than anything else in a deploy. It applies to a custom endpoint over
// HTTPS (TLS already guarantees the bytes arrive intact, and S3 accepts
// UNSIGNED-PAYLOAD there) and to a loopback endpoint (no network in
// between). Over plain HTTP to another host the body stays signed, since
// the signature is then its only integrity check. AWS's own endpoint
// (Endpoint "") keeps the SDK's default: a CRC32 trailing checksum over
// HTTPS. In every case the object's content hash is also stored as
// metadata (Headers.SHA256), which is what later deploys compare.
func unsignedPayload(endpoint string) bool {
	if endpoint == "" {
		return false
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	if u.Scheme == "https" {
		return true
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Check implements Store: credentials first, then HeadBucket.
func (s *S3Store) Check(ctx context.Context) error {
	if _, err := s.creds.Retrieve(ctx); err != nil {
		return fmt.Errorf("find AWS credentials: none in the environment, shared profile, SSO, web identity or instance role "+
			"(set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY): %w", ErrNoCredentials)
	}
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.opts.Bucket}, func(o *s3.Options) {
		// A wrong endpoint or bucket should fail fast, not after a minute of retries.
		o.RetryMaxAttempts = 2
	})
	if err == nil {
		return nil
	}
	var apiErr smithy.APIError
	var opErr *net.OpError
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &apiErr) && (apiErr.ErrorCode() == "NotFound" || apiErr.ErrorCode() == "NoSuchBucket"):
		return fmt.Errorf("bucket %q does not exist: check --bucket (and --region/--endpoint): %w", s.opts.Bucket, ErrBucketNotFound)
	case errors.As(err, &apiErr) && (apiErr.ErrorCode() == "Forbidden" || apiErr.ErrorCode() == "AccessDenied" ||
		apiErr.ErrorCode() == "InvalidAccessKeyId" || apiErr.ErrorCode() == "SignatureDoesNotMatch"):
		return fmt.Errorf("access to bucket %q denied (%s): check the AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID, ...) and their permissions: %w",
			s.opts.Bucket, apiErr.ErrorCode(), ErrAccessDenied)
	case errors.As(err, &dnsErr) || (errors.As(err, &opErr) && errors.Is(err, syscall.ECONNREFUSED)):
		where := s.opts.Endpoint
		if where == "" {
			where = "S3"
		}
		var cause error = opErr
		if dnsErr != nil {
			cause = dnsErr
		}
		return fmt.Errorf("reach %s for bucket %q: %w (check --endpoint and the network): %w", where, s.opts.Bucket, cause, ErrUnreachable)
	}
	return fmt.Errorf("check bucket %q: %w", s.opts.Bucket, err)
}

// ErrNoCredentials means the AWS default chain found no credentials.
var ErrNoCredentials = errors.New("no AWS credentials")

// ErrUnreachable means the store's endpoint refused the connection or its
// name does not resolve.
var ErrUnreachable = errors.New("store unreachable")

// ErrBucketNotFound means the bucket does not exist (or is in another region).
var ErrBucketNotFound = errors.New("bucket not found")

// ErrAccessDenied means the credentials may not use the bucket.
var ErrAccessDenied = errors.New("access denied")

// List implements Store with ListObjectsV2 pages of 1,000 keys.
func (s *S3Store) List(ctx context.Context, prefix string, fn func(Object) error) error {
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.opts.Bucket, Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list s3://%s/%s: %w", s.opts.Bucket, prefix, err)
		}
		for _, o := range page.Contents {
			obj := Object{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size), ETag: aws.ToString(o.ETag)}
			if o.LastModified != nil {
				obj.LastModified = *o.LastModified
			}
			if err := fn(obj); err != nil {
				return err
			}
		}
	}
	return nil
}

// Head implements Store.
func (s *S3Store) Head(ctx context.Context, key string) (Object, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.opts.Bucket, Key: &key})
	if err != nil {
		if isNotFound(err) {
			return Object{}, fmt.Errorf("head %s: %w", key, ErrNotFound)
		}
		return Object{}, fmt.Errorf("head %s: %w", key, err)
	}
	o := Object{Key: key, Size: aws.ToInt64(out.ContentLength), ETag: aws.ToString(out.ETag),
		Headers: Headers{ContentType: aws.ToString(out.ContentType), CacheControl: aws.ToString(out.CacheControl),
			SHA256: out.Metadata[MetaSHA256]}}
	if out.LastModified != nil {
		o.LastModified = *out.LastModified
	}
	return o, nil
}

// Get implements Store.
func (s *S3Store) Get(ctx context.Context, key string) ([]byte, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.opts.Bucket, Key: &key})
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("get %s: %w", key, ErrNotFound)
		}
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return b, nil
}

// Put implements Store: one PutObject below MultipartThreshold, else a
// multipart upload whose parts are read from body as they are sent.
func (s *S3Store) Put(ctx context.Context, key string, body io.ReaderAt, size int64, h Headers) error {
	if size >= s.opts.MultipartThreshold {
		return s.putMultipart(ctx, key, body, size, h)
	}
	// A SectionReader is seekable, so the SDK can sign it and rewind it
	// for a retry without buffering the file.
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &s.opts.Bucket, Key: &key, Body: io.NewSectionReader(body, 0, size),
		ContentLength: aws.Int64(size), ContentType: nonEmpty(h.ContentType), CacheControl: nonEmpty(h.CacheControl),
		Metadata: meta(h),
	}, s.bodyOpts...)
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

func (s *S3Store) putMultipart(ctx context.Context, key string, body io.ReaderAt, size int64, h Headers) (err error) {
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: &s.opts.Bucket, Key: &key, ContentType: nonEmpty(h.ContentType), CacheControl: nonEmpty(h.CacheControl),
		Metadata: meta(h),
	})
	if err != nil {
		return fmt.Errorf("put %s: start multipart upload: %w", key, err)
	}
	defer func() {
		if err != nil {
			// Abort even when ctx was cancelled, so no parts linger (and bill).
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			_, _ = s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: &s.opts.Bucket, Key: &key, UploadId: created.UploadId})
		}
	}()
	n := int((size + s.opts.PartSize - 1) / s.opts.PartSize)
	parts := make([]types.CompletedPart, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4) // parts of one file; files themselves already run in parallel
	for i := range n {
		off := int64(i) * s.opts.PartSize
		length := min(s.opts.PartSize, size-off)
		g.Go(func() error {
			num := int32(i + 1)
			out, err := s.client.UploadPart(gctx, &s3.UploadPartInput{
				Bucket: &s.opts.Bucket, Key: &key, UploadId: created.UploadId, PartNumber: &num,
				Body: io.NewSectionReader(body, off, length), ContentLength: aws.Int64(length),
			}, s.bodyOpts...)
			if err != nil {
				return fmt.Errorf("put %s: part %d: %w", key, num, err)
			}
			parts[i] = types.CompletedPart{ETag: out.ETag, PartNumber: &num}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &s.opts.Bucket, Key: &key, UploadId: created.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return fmt.Errorf("put %s: complete multipart upload: %w", key, err)
	}
	return nil
}

// SetHeaders implements Store with a copy of the object onto itself that
// replaces its metadata.
func (s *S3Store) SetHeaders(ctx context.Context, key string, h Headers) error {
	_, err := s.client.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket: &s.opts.Bucket, Key: &key, CopySource: aws.String(s.opts.Bucket + "/" + escapeKey(key)),
		MetadataDirective: types.MetadataDirectiveReplace,
		ContentType:       nonEmpty(h.ContentType), CacheControl: nonEmpty(h.CacheControl), Metadata: meta(h),
	})
	if err != nil {
		return fmt.Errorf("set headers of %s: %w", key, err)
	}
	return nil
}

// Delete implements Store with DeleteObjects batches of 1,000 keys.
func (s *S3Store) Delete(ctx context.Context, keys []string) error {
	for len(keys) > 0 {
		batch := keys[:min(len(keys), 1000)]
		keys = keys[len(batch):]
		ids := make([]types.ObjectIdentifier, len(batch))
		for i, k := range batch {
			ids[i] = types.ObjectIdentifier{Key: aws.String(k)}
		}
		out, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: &s.opts.Bucket,
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}}, func(o *s3.Options) {
			// DeleteObjects requires a Content-MD5 or checksum even on stores
			// that take checksums only "when required".
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenSupported
		})
		if err != nil {
			return fmt.Errorf("delete %d objects: %w", len(batch), err)
		}
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			return fmt.Errorf("delete %s: %s: %s (and %d more errors)", aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message), len(out.Errors)-1)
		}
	}
	return nil
}

func isNotFound(err error) bool {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "NotFound", "NoSuchKey":
			return true
		}
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}

func meta(h Headers) map[string]string {
	if h.SHA256 == "" {
		return nil
	}
	return map[string]string{MetaSHA256: h.SHA256}
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// escapeKey URL-escapes a key for CopySource, keeping the slashes.
func escapeKey(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}
