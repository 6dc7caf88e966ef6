package uploader_test

import (
	"context"
	"errors"
	"slices"
	"sort"
	"testing"

	"github.com/assetctl/assetctl/internal/testsite"
	"github.com/assetctl/assetctl/internal/testsvc"
	"github.com/assetctl/assetctl/uploader"
	"github.com/google/go-cmp/cmp"
)

// withBase is sitePaths under a viewer base ("" or "/www"), with the
// base's own directory form ("/www" beside "/www/").
func withBase(base string, sitePaths []string) []string {
	var out []string
	for _, p := range sitePaths {
		out = append(out, base+p)
		if p == "/" && base != "" {
			out = append(out, base)
		}
	}
	sort.Strings(out)
	return out
}

// A deploy to s3://bucket/sites/www invalidates, at each distribution, the
// paths its viewers request: CloudFront's origin path (read from the
// distribution) is stripped from the object keys, whether it is empty,
// equal to the deploy prefix or a parent of it; a distribution whose
// origin path is elsewhere gets no invalidation at all.
func TestDeployInvalidatesViewerPathsByOriginPath(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	moto := testsvc.StartMoto(t)
	ctx := context.Background()
	dists := map[string]string{ // origin path -> distribution
		"":           moto.CreateDistributionFor(t, bucket, ""),
		"/sites/www": moto.CreateDistributionFor(t, bucket, "/sites/www"),
		"/sites":     moto.CreateDistributionFor(t, bucket, "/sites/"),
		"/elsewhere": moto.CreateDistributionFor(t, bucket, "/elsewhere"),
	}
	cf := newCloudFront(t, moto, moto.URL, uploader.CloudFrontOptions{Bucket: bucket,
		DistributionIDs: []string{dists[""], dists["/sites/www"], dists["/sites"], dists["/elsewhere"]}})
	d := e.deployer(e.store(e.s3.Endpoint), uploader.Options{Prefix: "sites/www", Invalidators: []uploader.Invalidator{cf}})
	dir, _ := site(t, testsite.Spec{Pages: 3})
	res, err := d.Deploy(ctx, dir)
	if err != nil {
		t.Fatalf("deploy: %v", err)
	}
	site := res.Plan.Invalidate
	if !slices.Contains(site, "/") || !slices.Contains(site, "/index.html") {
		t.Fatalf("plan invalidates %v, want the root page among them", site)
	}
	want := map[string][]string{
		"":           withBase("/sites/www", site),
		"/sites/www": withBase("", site),
		"/sites":     withBase("/www", site),
		"/elsewhere": nil,
	}
	for op, dist := range dists {
		var got []string
		for _, inv := range moto.Invalidations(t, dist) {
			got = append(got, inv.Paths...)
		}
		sort.Strings(got)
		if diff := cmp.Diff(want[op], got); diff != "" {
			t.Errorf("origin path %q: invalidated paths (-want +got):\n%s", op, diff)
		}
	}
	// The plan says the same, per distribution.
	for _, c := range res.Plan.ViewerPaths {
		for op, dist := range dists {
			if c.CDN != "cloudfront:"+dist {
				continue
			}
			if c.OriginPath != op || c.Source != "distribution" {
				t.Errorf("%s: plan says origin path %q from %s, want %q from the distribution", c.CDN, c.OriginPath, c.Source, op)
			}
			if diff := cmp.Diff(want[op], c.Paths, cmp.Comparer(func(a, b []string) bool { return slices.Equal(a, b) })); diff != "" {
				t.Errorf("%s: plan's viewer paths (-want +got):\n%s", c.CDN, diff)
			}
		}
	}
	if len(res.Plan.ViewerPaths) != len(dists) {
		t.Errorf("plan names %d CDNs, want %d", len(res.Plan.ViewerPaths), len(dists))
	}
}

// The override wins over the distribution's configuration, and a
// distribution with no origin for the bucket fails the deploy before it
// publishes anything, naming the flag that fixes it.
func TestDeployOriginPathOverrideAndUnknownOrigin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	moto := testsvc.StartMoto(t)
	ctx := context.Background()
	other := moto.CreateDistributionFor(t, "another-bucket", "")
	st := e.store(e.s3.Endpoint)
	dir, _ := site(t, testsite.Spec{Pages: 2})

	cf := newCloudFront(t, moto, moto.URL, uploader.CloudFrontOptions{Bucket: bucket, DistributionIDs: []string{other}})
	_, err := e.deployer(st, uploader.Options{Prefix: "www", Invalidators: []uploader.Invalidator{cf}}).Deploy(ctx, dir)
	if !errors.Is(err, uploader.ErrNoOrigin) {
		t.Fatalf("deploy through a distribution of another bucket: got %v, want ErrNoOrigin", err)
	}
	if left := e.inspect("www/"); len(left) != 0 {
		t.Fatalf("a deploy that cannot map its viewer paths published %d objects, want none", len(left))
	}
	// A dry run reports the problem in the plan instead.
	res, err := e.deployer(st, uploader.Options{Prefix: "www", DryRun: true, Invalidators: []uploader.Invalidator{cf}}).Deploy(ctx, dir)
	if err != nil || res.Plan.ViewerPathsError == "" {
		t.Fatalf("dry run: got error %v and viewer-path error %q, want none and a reason", err, res.Plan.ViewerPathsError)
	}

	cf = newCloudFront(t, moto, moto.URL, uploader.CloudFrontOptions{Bucket: bucket, OriginPath: "/www/", DistributionIDs: []string{other}})
	res, err = e.deployer(st, uploader.Options{Prefix: "www", Invalidators: []uploader.Invalidator{cf}}).Deploy(ctx, dir)
	if err != nil {
		t.Fatalf("deploy with the origin path given: %v", err)
	}
	var got []string
	for _, inv := range moto.Invalidations(t, other) {
		got = append(got, inv.Paths...)
	}
	sort.Strings(got)
	if diff := cmp.Diff(withBase("", res.Plan.Invalidate), got); diff != "" {
		t.Errorf("invalidated paths with --origin-path /www (-want +got):\n%s", diff)
	}
	if c := res.Plan.ViewerPaths; len(c) != 1 || c[0].Source != "flag" || c[0].OriginPath != "/www" {
		t.Errorf("plan's viewer paths: got %+v, want origin path /www from the flag", c)
	}
}
