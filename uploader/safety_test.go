package uploader_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/assetctl/assetctl/internal/testsite"
	"github.com/assetctl/assetctl/internal/testsvc"
	"github.com/assetctl/assetctl/manifest"
	"github.com/assetctl/assetctl/uploader"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Point 4: when an asset cannot be uploaded (after every retry), nothing
// of step 3 is published and no record is written; rerunning completes.
func TestAssetFailurePublishesNoPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	dir0, m0 := site(t, testsite.Spec{})
	if _, err := e.deployer(e.store(e.s3.Endpoint), uploader.Options{}).Deploy(ctx, dir0); err != nil {
		t.Fatalf("deploy v0: %v", err)
	}
	before := e.inspect("")

	dir1, m1 := site(t, testsite.Spec{Version: 1, ImageEdits: map[int]string{2: "x", 3: "y"}})
	bad := m1.Files["img/i0003.png"].Path
	proxy := testsvc.StartFaultProxy(t, e.s3.Endpoint, testsvc.FaultOptions{
		Fail: func(r *http.Request) bool { return r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, bad) },
	})
	cdn := &recorder{}
	d := e.deployer(e.store(proxy.URL, func(o *uploader.S3Options) { o.MaxAttempts = 3 }), uploader.Options{Invalidators: []uploader.Invalidator{cdn}})
	_, err := d.Deploy(ctx, dir1)
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "no page was published") {
		t.Fatalf("got error %v, want one naming %s and saying no page was published", err, bad)
	}
	if n := proxy.Counts()["slowdown"]; n != 3 {
		t.Errorf("got %d attempts at the failing asset, want 3 (MaxAttempts)", n)
	}
	after := e.inspect("")
	for _, o := range m0.Outputs() {
		if o.Immutable {
			continue
		}
		if got, want := after[o.Path].SHA256, before[o.Path].SHA256; got != want {
			t.Errorf("%s changed after a failed asset step: got sha256 %s, want the old %s", o.Path, got, want)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok && strings.HasPrefix(k, uploader.RecordDir) {
			t.Errorf("a deploy record %s was written although step 1 failed", k)
		}
	}
	if len(cdn.calls) != 0 {
		t.Errorf("invalidated %v after a failed deploy, want nothing", cdn.calls)
	}
	e.checkInvariant2("", after)

	if _, err := e.deployer(e.store(e.s3.Endpoint), uploader.Options{}).Deploy(ctx, dir1); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	e.checkPublished("", m1)
}

// Point 10: random 503 SlowDown, connection resets and slow answers are
// retried (the SDK retryer, with backoff and jitter) and the deploy
// completes exactly.
func TestRetriesThroughFaults(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	proxy := testsvc.StartFaultProxy(t, e.s3.Endpoint, testsvc.FaultOptions{SlowDown: 0.15, Reset: 0.1, Slow: 0.1, Delay: 50 * time.Millisecond, Seed: 3})
	d := e.deployer(e.store(proxy.URL, func(o *uploader.S3Options) { o.MaxAttempts = 20 }), uploader.Options{})
	dir, m := site(t, testsite.Spec{Pages: 30, Images: 60})
	if _, err := d.Deploy(context.Background(), dir); err != nil {
		t.Fatalf("deploy through faults: %v", err)
	}
	c := proxy.Counts()
	if c["slowdown"] == 0 || c["reset"] == 0 || c["slow"] == 0 {
		t.Errorf("got faults %v, want some of each kind", c)
	}
	e.checkPublished("", m)
}

// Point 2: a change of the header rules (and of content types) is detected
// from the deploy record and re-applied without re-uploading any bytes.
func TestHeaderRuleChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	dir, m := site(t, testsite.Spec{})
	if _, err := e.deployer(e.store(e.s3.Endpoint), uploader.Options{}).Deploy(ctx, dir); err != nil {
		t.Fatalf("deploy: %v", err)
	}
	rules := []uploader.Rule{
		{Match: "**/*.html", CacheControl: "no-cache"},
		{Match: "img/i0000.*.png", ContentType: "image/x-test"},
		{Match: "**", CacheControl: "public, max-age=31536000, immutable"}, // same as the default: no change
	}
	d := e.deployer(e.store(e.s3.Endpoint), uploader.Options{Rules: rules})
	mark := e.s3.Mark(t)
	res, err := d.Deploy(ctx, dir)
	if err != nil {
		t.Fatalf("deploy with new rules: %v", err)
	}
	if res.Uploaded != 0 {
		t.Errorf("uploaded %d files for a header change, want 0", res.Uploaded)
	}
	var pages int
	for _, o := range m.Outputs() {
		if strings.HasSuffix(o.Path, ".html") {
			pages++
		}
	}
	// Every page and the image get new headers; robots.txt now matches
	// "**" and becomes immutable-cached by the third rule.
	if got, want := res.HeadersSet, pages+2; got != want {
		t.Errorf("updated headers of %d objects, want %d", got, want)
	}
	if got, want := len(e.puts(mark)), pages+3; got != want { // the copies and the record
		t.Errorf("header update wrote %d objects, want %d", got, want)
	}
	objs := e.inspect("")
	for _, o := range m.Outputs() {
		got := objs[o.Path]
		if got.SHA256 != o.Hash {
			t.Errorf("%s: bytes changed by a header update", o.Path)
		}
		switch {
		case strings.HasSuffix(o.Path, ".html") && got.CacheControl != "no-cache":
			t.Errorf("%s: got Cache-Control %q, want no-cache", o.Path, got.CacheControl)
		case strings.HasPrefix(o.Path, "img/i0000.") && got.ContentType != "image/x-test":
			t.Errorf("%s: got Content-Type %q, want image/x-test", o.Path, got.ContentType)
		}
	}
	// The record cannot vouch for in-place header rewrites (their ETags do
	// not change), so the next deploy HEADs those objects once and writes
	// a refreshed record; after that a redeploy sends no HEAD and no PUT.
	mark = e.s3.Mark(t)
	res, err = d.Deploy(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.Plan.Heads, pages+1; got != want { // immutable objects are never read
		t.Errorf("first redeploy after a header update sent %d HEADs, want %d", got, want)
	}
	if puts := e.puts(mark); len(puts) != 1 || !strings.Contains(puts[0], uploader.RecordDir) {
		t.Errorf("first redeploy after a header update wrote %v, want only a refreshed record", puts)
	}
	mark = e.s3.Mark(t)
	if _, err := d.Deploy(ctx, dir); err != nil {
		t.Fatal(err)
	}
	if puts := e.puts(mark); len(puts) != 0 {
		t.Errorf("redeploy with the same rules wrote %v, want nothing", puts)
	}
	if heads := e.s3.Requests(t, mark, "HEAD"); len(heads) > 1 {
		t.Errorf("redeploy after a header update sent %d HEADs, want only the bucket check", len(heads))
	}
}

// Point 6: prune deletes only fingerprinted objects that no kept deploy
// references, never anything outside the prefix, and --max-deletes stops
// the prune but not the deploy.
func TestPrune(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	raw := s3.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider(e.s3.AccessKey, e.s3.SecretKey, "")},
		func(o *s3.Options) { o.BaseEndpoint = aws.String(e.s3.Endpoint); o.UsePathStyle = true })
	for _, k := range []string{"site-old/img/i0000.deadbeef.png", "siteother.txt", "site/img/manual-upload.png"} {
		if _, err := raw.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: strings.NewReader("x")}); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
	}
	clock := time.Now().Add(72 * time.Hour)
	now := func() time.Time { return clock }
	deploy := func(version int, opts uploader.Options) (*uploader.Result, *manifest.Manifest) {
		t.Helper()
		dir, m := site(t, testsite.Spec{Version: version, ImageEdits: map[int]string{version: "v"}})
		opts.Prefix, opts.Now, opts.Grace = "site", now, time.Hour
		res, err := e.deployer(e.store(e.s3.Endpoint), opts).Deploy(ctx, dir)
		if err != nil {
			t.Fatalf("deploy v%d: %v", version, err)
		}
		clock = clock.Add(2 * time.Hour) // every deploy outlives the grace period
		return res, m
	}
	_, m0 := deploy(0, uploader.Options{Keep: 2})
	_, m1 := deploy(1, uploader.Options{Keep: 2})
	// Every version salts its own image: image v differs in build v only.
	res, m2 := deploy(2, uploader.Options{Keep: 2, MaxDeletes: 1})
	if res.Plan.PruneSkipped == "" || res.Deleted != 0 {
		t.Errorf("max-deletes 1: got skipped %q deleted %d, want the prune skipped", res.Plan.PruneSkipped, res.Deleted)
	}
	// Keep 2 builds (v2, v3); v0 and v1 were replaced over an hour ago, so
	// what only they used goes, then their records.
	res, m3 := deploy(3, uploader.Options{Keep: 2})
	var pruned []string
	for _, a := range res.Plan.Prune {
		pruned = append(pruned, a.Path)
	}
	want := []string{m0.Files["img/i0000.png"].Path, m0.Files["js/app.ts"].Path, m1.Files["img/i0001.png"].Path, m1.Files["js/app.ts"].Path}
	slices.Sort(want)
	if len(pruned) != 6 || !slices.Equal(pruned[:4], want) || !strings.HasPrefix(pruned[4], uploader.RecordDir) || !strings.HasPrefix(pruned[5], uploader.RecordDir) {
		t.Errorf("pruned %v, want %v and the records of v0 and v1", pruned, want)
	}
	if res.Deleted != 6 {
		t.Errorf("deleted %d objects, want 6", res.Deleted)
	}
	objs := e.inspect("")
	for _, k := range []string{"site-old/img/i0000.deadbeef.png", "siteother.txt", "site/img/manual-upload.png"} {
		if _, ok := objs[k]; !ok {
			t.Errorf("%s was deleted, want objects deploy did not publish left alone", k)
		}
	}
	for _, m := range []*manifest.Manifest{m2, m3} {
		for _, o := range m.Outputs() {
			if _, ok := objs["site/"+o.Path]; o.Immutable && !ok {
				t.Errorf("%s of a kept deploy was pruned", o.Path)
			}
		}
	}
	e.checkInvariant2("site/", objs)
}

// Point 6: the grace period keeps the assets of every deploy that was live
// within it, however many deploys came since.
func TestPruneGrace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	clock := time.Now().Add(72 * time.Hour)
	var ms []*manifest.Manifest
	for v := range 4 {
		dir, m := site(t, testsite.Spec{Version: v})
		ms = append(ms, m)
		d := e.deployer(e.store(e.s3.Endpoint), uploader.Options{Keep: 1, Grace: time.Hour, Now: func() time.Time { return clock }})
		if _, err := d.Deploy(ctx, dir); err != nil {
			t.Fatalf("deploy v%d: %v", v, err)
		}
		clock = clock.Add(40 * time.Minute)
	}
	// The last deploy runs at 120 minutes. v0 was live until 40 minutes in,
	// over an hour before: pruned although only three deploys came since.
	// v1 was live until 80 minutes, v2 until 120: within the hour, kept,
	// though Keep is 1.
	objs := e.inspect("")
	for v, m := range ms {
		_, ok := objs[m.Files["js/app.ts"].Path]
		if want := v > 0; ok != want {
			t.Errorf("bundle of v%d present %v, want %v", v, ok, want)
		}
	}
}

// Point 7: rollback republishes the previous build's pages with their old
// headers, invalidates them, and refuses unknown builds without writing.
func TestRollback(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	cdn := &recorder{}
	d := e.deployer(e.store(e.s3.Endpoint), uploader.Options{Invalidators: []uploader.Invalidator{cdn}})
	dir0, m0 := site(t, testsite.Spec{})
	dir1, m1 := site(t, testsite.Spec{Version: 1})
	for _, dir := range []string{dir0, dir1} {
		if _, err := d.Deploy(ctx, dir); err != nil {
			t.Fatalf("deploy: %v", err)
		}
	}
	mark := e.s3.Mark(t)
	if _, err := d.Rollback(ctx, "0123456789abcdef"); err == nil || !errors.Is(err, uploader.ErrNotRollbackable) || !strings.Contains(err.Error(), m0.BuildID) {
		t.Errorf("rollback to an unknown build: got %v, want ErrNotRollbackable listing the kept builds", err)
	}
	if puts := e.puts(mark); len(puts) != 0 {
		t.Errorf("a refused rollback wrote %v", puts)
	}
	res, err := d.Rollback(ctx, "")
	if err != nil {
		t.Fatalf("rollback: %v", err)
	}
	if res.Plan.BuildID != m0.BuildID || len(res.Plan.Assets) != 0 {
		t.Errorf("rolled back to %s uploading %d assets, want %s and none", res.Plan.BuildID, len(res.Plan.Assets), m0.BuildID)
	}
	e.checkPublished("", m0)
	last := cdn.calls[len(cdn.calls)-1]
	if !slices.Contains(last, "/") || !slices.Contains(last, "/docs/") {
		t.Errorf("rollback invalidated %v, want the pages including / and /docs/", last)
	}
	// Rolling forward again by build ID.
	if _, err := d.Rollback(ctx, m1.BuildID); err != nil {
		t.Fatalf("roll forward: %v", err)
	}
	e.checkPublished("", m1)
}

// Point 8: a dry run plans against the bucket and writes nothing.
func TestDryRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	dir, m := site(t, testsite.Spec{})
	cdn := &recorder{}
	d := e.deployer(e.store(e.s3.Endpoint), uploader.Options{DryRun: true, Invalidators: []uploader.Invalidator{cdn}})
	mark := e.s3.Mark(t)
	res, err := d.Deploy(ctx, dir)
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if puts := e.puts(mark); len(puts) != 0 {
		t.Errorf("dry run wrote %v", puts)
	}
	if len(cdn.calls) != 0 {
		t.Errorf("dry run invalidated %v", cdn.calls)
	}
	if got, want := len(res.Plan.Assets)+len(res.Plan.Pages), len(m.Outputs()); got != want {
		t.Errorf("plan uploads %d files, want %d", got, want)
	}
	if res.Plan.Assets[0].Headers.CacheControl != uploader.CacheImmutable || res.Plan.Record == "" || len(res.Plan.Invalidate) == 0 {
		t.Errorf("plan lacks headers, record or invalidations: %+v", res.Plan)
	}
	if objs := e.inspect(""); len(objs) != 0 {
		t.Errorf("bucket has %d objects after a dry run, want 0", len(objs))
	}
}

// Point 10: large files go up in parts, streamed from disk.
func TestMultipart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir, m := site(t, testsite.Spec{Pages: 2, Images: 2, Big: 12 << 20})
	st := e.store(e.s3.Endpoint, func(o *uploader.S3Options) { o.MultipartThreshold, o.PartSize = 5<<20, 5<<20 })
	if _, err := e.deployer(st, uploader.Options{}).Deploy(context.Background(), dir); err != nil {
		t.Fatalf("deploy: %v", err)
	}
	objs := e.checkPublished("", m)
	big := objs[m.Files["video/big.bin"].Path]
	if !strings.HasSuffix(big.ETag, `-3"`) {
		t.Errorf("big file ETag %s, want a 3-part multipart ETag", big.ETag)
	}
}

// Bad input: each fails with one clear message and publishes nothing.
func TestBadBuildOutput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	malformed := t.TempDir()
	if err := os.WriteFile(filepath.Join(malformed, manifest.FileName), []byte(`{"version":1,"files":`), 0o644); err != nil {
		t.Fatal(err)
	}
	missingFile, m := site(t, testsite.Spec{})
	if err := os.Remove(filepath.Join(missingFile, m.Files["docs/index.html"].Path)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, dir string
		want      string
		is        error
	}{
		{"not a build", t.TempDir(), "run assetctl build first", manifest.ErrNotBuildOutput},
		{"malformed manifest", malformed, "invalid JSON", nil},
		{"missing output file", missingFile, "docs/index.html is listed in manifest.json but missing", uploader.ErrInconsistentBuild},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.deployer(e.store(e.s3.Endpoint), uploader.Options{}).Deploy(context.Background(), tt.dir)
			if err == nil || !strings.Contains(err.Error(), tt.want) || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if objs := e.inspect(""); len(objs) != 0 {
		t.Errorf("bad input published %d objects, want 0", len(objs))
	}
}
