package uploader_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/assetctl/assetctl/internal/testsite"
	"github.com/assetctl/assetctl/internal/testsvc"
	"github.com/assetctl/assetctl/manifest"
	"github.com/assetctl/assetctl/uploader"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

const bucket = "site-bucket"

// env is one test's S3 server with an empty bucket.
type env struct {
	t  testing.TB
	s3 *testsvc.S3
}

func newEnv(t testing.TB) *env {
	t.Helper()
	s := testsvc.StartS3(t)
	s.CreateBucket(t, bucket)
	return &env{t: t, s3: s}
}

// store returns an S3Store for endpoint (the server's, or a proxy's).
func (e *env) store(endpoint string, mod ...func(*uploader.S3Options)) *uploader.S3Store {
	e.t.Helper()
	opts := uploader.S3Options{Bucket: bucket, Endpoint: endpoint, Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider(e.s3.AccessKey, e.s3.SecretKey, ""),
		MaxBackoff:  50 * time.Millisecond}
	for _, f := range mod {
		f(&opts)
	}
	st, err := uploader.NewS3Store(context.Background(), opts)
	if err != nil {
		e.t.Fatalf("new store: %v", err)
	}
	return st
}

func (e *env) deployer(st uploader.Store, opts uploader.Options) *uploader.Deployer {
	e.t.Helper()
	opts.Bucket = bucket
	d, err := uploader.New(st, opts)
	if err != nil {
		e.t.Fatalf("new deployer: %v", err)
	}
	return d
}

// site writes a synthetic build into a fresh temp dir.
func site(t testing.TB, spec testsite.Spec) (string, *manifest.Manifest) {
	t.Helper()
	dir := t.TempDir()
	m, err := testsite.Write(dir, spec)
	if err != nil {
		t.Fatalf("write test site: %v", err)
	}
	return dir, m
}

// remoteObject is one key as boto3 sees it.
type remoteObject struct {
	Size         int64             `json:"size"`
	ETag         string            `json:"etag"`
	ContentType  string            `json:"contentType"`
	CacheControl string            `json:"cacheControl"`
	Metadata     map[string]string `json:"metadata"`
	SHA256       string            `json:"sha256"`
	Body         string            `json:"body"`
}

// inspect reads bucket/prefix through boto3, an independent client.
func (e *env) inspect(prefix string) map[string]remoteObject {
	e.t.Helper()
	cmd := exec.Command("python3", "testdata/boto3_view.py", bucket, prefix)
	cmd.Env = append(os.Environ(), e.s3.Env()...)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		e.t.Fatalf("inspect with boto3: %v\n%s", err, stderr)
	}
	var objs map[string]remoteObject
	if err := json.Unmarshal(out, &objs); err != nil {
		e.t.Fatalf("decode boto3 output: %v", err)
	}
	return objs
}

// checkPublished verifies, through boto3, that every output of m is at
// prefix with the right bytes and default headers, and that no page
// references a missing asset.
func (e *env) checkPublished(prefix string, m *manifest.Manifest) map[string]remoteObject {
	e.t.Helper()
	objs := e.inspect(prefix)
	for _, o := range m.Outputs() {
		got, ok := objs[prefix+o.Path]
		if !ok {
			e.t.Errorf("%s: missing from the bucket", o.Path)
			continue
		}
		if got.SHA256 != o.Hash {
			e.t.Errorf("%s: got sha256 %s, want %s", o.Path, got.SHA256, o.Hash)
		}
		if got.Metadata["assetctl-sha256"] != o.Hash {
			e.t.Errorf("%s: got x-amz-meta-assetctl-sha256 %q, want %q", o.Path, got.Metadata["assetctl-sha256"], o.Hash)
		}
		wantCC := uploader.CacheMutable
		if o.Immutable {
			wantCC = uploader.CacheImmutable
		}
		if got.CacheControl != wantCC {
			e.t.Errorf("%s: got Cache-Control %q, want %q", o.Path, got.CacheControl, wantCC)
		}
		wantCT := o.ContentType
		if strings.HasPrefix(wantCT, "text/") {
			wantCT += "; charset=utf-8"
		}
		if got.ContentType != wantCT {
			e.t.Errorf("%s: got Content-Type %q, want %q", o.Path, got.ContentType, wantCT)
		}
	}
	e.checkInvariant2(prefix, objs)
	return objs
}

// checkInvariant2 fails if any published page references a missing asset.
func (e *env) checkInvariant2(prefix string, objs map[string]remoteObject) {
	e.t.Helper()
	pages := map[string][]byte{}
	keys := map[string]bool{}
	for k, o := range objs {
		rel := strings.TrimPrefix(k, prefix)
		keys[rel] = true
		if strings.HasSuffix(k, ".html") {
			pages[rel] = []byte(o.Body)
		}
	}
	if broken := testsite.BrokenPages(pages, keys); len(broken) > 0 {
		e.t.Errorf("invariant 2 broken: published pages reference missing assets: %v", broken)
	}
}

// puts lists the keys written since mark (PUTs, copies and multipart parts).
func (e *env) puts(mark testsvc.LogMark) []string {
	reqs := e.s3.Requests(e.t, mark, "PUT", "POST")
	sort.Strings(reqs)
	return slices.Compact(reqs)
}

// recorder is a test double of a CDN: it records what it was asked to invalidate.
type recorder struct {
	mu    sync.Mutex
	calls [][]string
	refs  []string
	waits []string
}

func (r *recorder) Invalidate(_ context.Context, paths []string, ref string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, paths)
	r.refs = append(r.refs, ref)
	return "INV" + ref[len(ref)-4:], nil
}

func (r *recorder) Wait(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waits = append(r.waits, id)
	return nil
}

var _ uploader.Invalidator = (*recorder)(nil)
