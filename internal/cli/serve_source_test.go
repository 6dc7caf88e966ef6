package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/assetctl/assetctl/internal/testsite"
	"github.com/assetctl/assetctl/manifest"
	"github.com/assetctl/assetctl/origin"
	"github.com/assetctl/assetctl/uploader"
)

// TestBucketManifestSource runs the real assetctl deploy against a real S3
// server (versitygw) and follows it with the serve command's bucket
// source: each deploy, and a rollback, becomes the live manifest; an
// unchanged poll reads no record; a broken record keeps the last good
// manifest.
func TestBucketManifestSource(t *testing.T) {
	e := newDeployEnv(t)
	ctx := t.Context()
	dir0, m0 := writeSite(t, testsite.Spec{Pages: 2, Images: 2})
	dir1, m1 := writeSite(t, testsite.Spec{Pages: 2, Images: 2, Version: 1})
	bucketURL := "s3://" + testBucket + "/site"
	deploy := func(args ...string) {
		t.Helper()
		code, _, stderr := run(t, append(append([]string{"deploy"}, args...), "--bucket", bucketURL, "--endpoint", e.s3.Endpoint)...)
		if code != 0 {
			t.Fatalf("deploy %v: exit %d: %s", args, code, stderr)
		}
	}
	src, err := newManifestSource(ctx, bucketURL, e.s3.Endpoint, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := src.Fetch(ctx, ""); !errors.Is(err, origin.ErrNoDeploy) {
		t.Fatalf("before any deploy: got %v, want ErrNoDeploy", err)
	}
	if _, err := origin.NewLive(ctx, src, origin.LiveOptions{}); err == nil {
		t.Errorf("NewLive started with no deploy in the bucket")
	}

	deploy(dir0)
	m, etag, changed, err := src.Fetch(ctx, "")
	if err != nil || !changed || m.BuildID != m0.BuildID {
		t.Fatalf("after deploying %s: got %v, changed %v, %v", m0.BuildID, m, changed, err)
	}
	// An unchanged poll is one listing: the record is not read again.
	mark := e.s3.Mark(t)
	if _, e2, changed, err := src.Fetch(ctx, etag); err != nil || changed || e2 != etag {
		t.Errorf("unchanged poll: changed %v, etag %q (want %q), %v", changed, e2, etag, err)
	}
	for _, r := range e.s3.Requests(t, mark) {
		if strings.Contains(r, manifest.RecordDir) {
			t.Errorf("an unchanged poll read the record: %s", r)
		}
	}

	live, err := origin.NewLive(ctx, src, origin.LiveOptions{CDNURL: "https://cdn.example.com/site/"})
	if err != nil {
		t.Fatal(err)
	}
	deploy(dir1)
	if err := live.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got := live.Current().BuildID(); got != m1.BuildID {
		t.Errorf("after deploying %s: live serves %s", m1.BuildID, got)
	}
	u, err := live.Current().URL("js/app.ts")
	if want := "https://cdn.example.com/site/" + m1.Files["js/app.ts"].Path; err != nil || u != want {
		t.Errorf("URL of js/app.ts: got %q, %v; want %q", u, err, want)
	}

	deploy("--rollback")
	if err := live.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got := live.Current().BuildID(); got != m0.BuildID {
		t.Errorf("after rolling back to %s: live serves %s", m0.BuildID, got)
	}

	// A newer record that cannot be read: the last good manifest stays.
	store, err := uploader.NewS3Store(ctx, uploader.S3Options{Bucket: testBucket, Endpoint: e.s3.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	bad := manifest.RecordKey("site/", time.Now().Add(time.Hour), "ffffffffffffffff")
	junk := []byte("not a deploy record")
	if err := store.Put(ctx, bad, bytes.NewReader(junk), int64(len(junk)), uploader.Headers{ContentType: "application/gzip"}); err != nil {
		t.Fatal(err)
	}
	if err := live.Reload(ctx); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("a broken newest record: got %v, want an error naming %s", err, bad)
	}
	if got := live.Current().BuildID(); got != m0.BuildID {
		t.Errorf("after a broken record: live serves %s, want %s still", got, m0.BuildID)
	}
	if err := store.Delete(ctx, []string{bad}); err != nil {
		t.Fatal(err)
	}

	// Rolling forward again by build ID is a newer record as well.
	deploy("--rollback", m1.BuildID)
	if err := live.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got := live.Current().BuildID(); got != m1.BuildID {
		t.Errorf("after --rollback %s: live serves %s", m1.BuildID, got)
	}
}

// TestS3RecordsConditionalGet checks the adapter against the real server:
// a GET with the object's ETag answers ErrNotModified and sends no body.
func TestS3RecordsConditionalGet(t *testing.T) {
	e := newDeployEnv(t)
	ctx := t.Context()
	store, err := uploader.NewS3Store(ctx, uploader.S3Options{Bucket: testBucket, Endpoint: e.s3.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	key := "site/" + manifest.RecordDir + "x.json.gz"
	body := []byte("record bytes")
	if err := store.Put(ctx, key, bytes.NewReader(body), int64(len(body)), uploader.Headers{}); err != nil {
		t.Fatal(err)
	}
	r := s3Records{store}
	var listed []string
	if err := r.List(ctx, "site/", func(k, etag string) error { listed = append(listed, k+" "+etag); return nil }); err != nil {
		t.Fatal(err)
	}
	data, etag, err := r.Get(ctx, key, "")
	if err != nil || string(data) != string(body) || etag == "" {
		t.Fatalf("unconditional get: %q %q %v", data, etag, err)
	}
	if len(listed) != 1 || listed[0] != key+" "+etag {
		t.Errorf("listing: got %q, want [%s %s]", listed, key, etag)
	}
	if data, _, err := r.Get(ctx, key, etag); !errors.Is(err, origin.ErrNotModified) || data != nil {
		t.Errorf("get with the current ETag: got %q, %v; want ErrNotModified", data, err)
	}
	if data, _, err := r.Get(ctx, key, `"other"`); err != nil || string(data) != string(body) {
		t.Errorf("get with another ETag: got %q, %v; want the body", data, err)
	}
	if _, err := newBucketManifestSource(ctx, "s3://", e.s3.Endpoint, ""); err == nil {
		t.Errorf("an s3:// URL without a bucket was accepted")
	}
	if _, err := newManifestSource(ctx, "", "", ""); err == nil {
		t.Errorf("an empty --manifest was accepted")
	}
}

func TestManifestSourceFlag(t *testing.T) {
	for in, want := range map[string]string{
		"s3://":       `--manifest "s3://": the bucket name is empty`,
		"s3://b/../x": `--manifest "s3://b/../x": the prefix must be a clean path`,
		"":            "--manifest is required",
	} {
		_, err := newManifestSource(t.Context(), in, "", "")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--manifest %q: got %v, want %q", in, err, want)
		}
	}
	src, err := newManifestSource(t.Context(), "dist", "", "")
	if err != nil || src == nil {
		t.Errorf("a directory: got %v, %v", src, err)
	}
}
