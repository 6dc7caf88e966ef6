package uploader_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/assetctl/assetctl/internal/testsite"
	"github.com/assetctl/assetctl/internal/testsvc"
	"github.com/assetctl/assetctl/manifest"
	"github.com/assetctl/assetctl/uploader"
)

// purgeLog records the URLs of the purge requests a client sends.
type purgeLog struct {
	mu   sync.Mutex
	urls []string
}

func (l *purgeLog) RoundTrip(r *http.Request) (*http.Response, error) {
	l.mu.Lock()
	l.urls = append(l.urls, r.URL.String())
	l.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func (l *purgeLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := slices.Sorted(slices.Values(l.urls))
	l.urls = nil
	return out
}

// edgeGet fetches base+"/"+path through the edge and returns body and X-Cache.
func edgeGet(t *testing.T, base, path string) (string, string) {
	t.Helper()
	return fetch(t, base, "/"+path)
}

func outputPath(t *testing.T, m *manifest.Manifest, source string) string {
	t.Helper()
	f, ok := m.Lookup(source)
	if !ok {
		t.Fatalf("manifest has no %s", source)
	}
	return f.Path
}

func readOut(t *testing.T, dir, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(path)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A redeploy through a Varnish edge in front of versitygw: the changed
// pages are purged and served fresh, unchanged pages and every asset stay
// cached, and the old and new hashed assets both resolve.
func TestDeployPurgesChangedPagesAtVarnish(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	testsvc.AllowAnonymousRead(t, e.s3, bucket)
	edge := testsvc.StartVarnish(t, testsvc.VarnishOptions{Backend: strings.TrimPrefix(e.s3.Endpoint, "http://")})
	base := edge.URL + "/" + bucket + "/site" // path-style origin, deploy prefix "site"
	log := &purgeLog{}
	// The base URL serves the keys under site/.
	pg, err := uploader.NewPurge(base, uploader.PurgeOptions{Client: &http.Client{Transport: log}, OriginPath: "/site"})
	if err != nil {
		t.Fatalf("NewPurge: %v", err)
	}
	st := e.store(e.s3.Endpoint)
	deploy := func(dir string) *uploader.Result {
		t.Helper()
		d := e.deployer(st, uploader.Options{Prefix: "site", Invalidators: []uploader.Invalidator{pg}, Wait: true})
		res, err := d.Deploy(ctx, dir)
		if err != nil {
			t.Fatalf("deploy %s: %v", dir, err)
		}
		return res
	}

	spec := testsite.Spec{Pages: 5, Images: 4}
	v1, m1 := site(t, spec)
	deploy(v1)
	log.take() // a first deploy purges its new pages, which an edge may hold as 404s

	// Warm the edge: every output of v1, twice (the second is a hit).
	var v1Outputs []string
	for _, o := range m1.Outputs() {
		v1Outputs = append(v1Outputs, o.Path)
		if body, _ := edgeGet(t, base, o.Path); body != readOut(t, v1, o.Path) {
			t.Fatalf("edge GET %s: got %d bytes that differ from the build's", o.Path, len(body))
		}
		if _, xc := edgeGet(t, base, o.Path); xc != "HIT" {
			t.Fatalf("edge GET %s again: got X-Cache %q, want HIT", o.Path, xc)
		}
	}

	// v2 changes image 0 (new hashed name) and the text of page 0; pages 0
	// and 4 reference image 0, so exactly those two pages change.
	spec.ImageEdits = map[int]string{0: "v2"}
	spec.PageEdits = map[int]string{0: "<p>new in v2</p>"}
	v2, m2 := site(t, spec)
	res := deploy(v2)

	changed := []string{"docs/s4/p4.html", "index.html"}
	var wantPurged []string
	for _, p := range uploader.InvalidationPaths(changed) {
		wantPurged = append(wantPurged, pg.URL(p))
	}
	if diff := cmp.Diff(wantPurged, log.take()); diff != "" {
		t.Errorf("purged URLs (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"purge:3"}, res.Invalidations); diff != "" {
		t.Errorf("result invalidations (-want +got):\n%s", diff)
	}

	for _, p := range changed {
		body, xc := edgeGet(t, base, p)
		if want := readOut(t, v2, p); body != want {
			t.Errorf("edge serves %s: got the old page (X-Cache %s), want v2's", p, xc)
		}
		if xc != "MISS" {
			t.Errorf("edge GET %s after the purge: got X-Cache %q, want MISS", p, xc)
		}
	}
	// Everything else v1 had is still the cached object: no asset (and no
	// unchanged page) was purged.
	for _, p := range v1Outputs {
		if slices.Contains(changed, p) {
			continue
		}
		if body, xc := edgeGet(t, base, p); xc != "HIT" || body != readOut(t, v1, p) {
			t.Errorf("edge GET %s after deploying v2: got X-Cache %q, want the cached v1 object (HIT): it must not be purged", p, xc)
		}
	}
	// Old and new hashed image 0 both resolve through the edge: the old one
	// for pages still cached in browsers, the new one for v2's pages.
	oldImg, newImg := outputPath(t, m1, "img/i0000.png"), outputPath(t, m2, "img/i0000.png")
	if oldImg == newImg {
		t.Fatalf("image 0 kept its name %s across versions; the test needs a new hash", oldImg)
	}
	for _, img := range []struct{ path, dir string }{{oldImg, v1}, {newImg, v2}} {
		if body, _ := edgeGet(t, base, img.path); body != readOut(t, img.dir, img.path) {
			t.Errorf("edge GET %s: bytes differ from the build's", img.path)
		}
	}
	if !strings.Contains(readOut(t, v2, "index.html"), newImg) {
		t.Errorf("v2's index.html does not reference %s", newImg)
	}

	// A redeploy of v2 changes nothing and purges nothing.
	deploy(v2)
	if got := log.take(); len(got) != 0 {
		t.Errorf("no-change redeploy purged %v, want nothing", got)
	}
}

// Pointing --purge at the S3 origin instead of the edge gets a clear error.
func TestPurgeAtOriginNotEdge(t *testing.T) {
	e := newEnv(t)
	pg, err := uploader.NewPurge(e.s3.Endpoint+"/"+bucket, uploader.PurgeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = pg.Invalidate(context.Background(), []string{"/index.html"}, "r")
	var perr *uploader.PurgeError
	if !errors.As(err, &perr) || perr.StatusCode != http.StatusNotImplemented {
		t.Fatalf("got error %v, want a *PurgeError with status 501", err)
	}
	for _, want := range []string{e.s3.Endpoint + "/" + bucket + "/index.html", "501 Not Implemented", "edge's URL rather than the origin's"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("got error %q, want it to contain %q", err, want)
		}
	}
}

// A deploy with a CloudFront invalidator (moto) invalidates exactly the
// changed pages and their directory forms, never a hashed asset, and
// reuses the invalidation when the deploy is retried.
func TestDeployInvalidatesChangedPagesAtCloudFront(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	m := testsvc.StartMoto(t)
	dist := m.CreateDistribution(t)
	cf := newCloudFront(t, m, m.URL, uploader.CloudFrontOptions{DistributionIDs: []string{dist}})
	st := e.store(e.s3.Endpoint)
	deploy := func(dir string) *uploader.Result {
		t.Helper()
		d := e.deployer(st, uploader.Options{Invalidators: []uploader.Invalidator{cf}, Wait: true})
		res, err := d.Deploy(ctx, dir)
		if err != nil {
			t.Fatalf("deploy %s: %v", dir, err)
		}
		return res
	}
	spec := testsite.Spec{Pages: 5, Images: 4}
	v1, _ := site(t, spec)
	deploy(v1)
	spec.ImageEdits = map[int]string{0: "v2"}
	spec.PageEdits = map[int]string{1: "<p>docs changed</p>"}
	v2, m2 := site(t, spec)
	res := deploy(v2)

	// The first deploy invalidated its new pages; the second is what the
	// redeploy sent.
	invs := m.Invalidations(t, dist)
	if len(invs) != 2 {
		t.Fatalf("got %d invalidations, want 2 (one per deploy)", len(invs))
	}
	invs = invs[1:]
	// Page 1 is docs/index.html (edited); pages 0 and 4 show image 0.
	want := []string{"/", "/docs", "/docs/", "/docs/index.html", "/docs/s4/p4.html", "/index.html"}
	if diff := cmp.Diff(want, invs[0].Paths); diff != "" {
		t.Errorf("invalidated paths (-want +got):\n%s", diff)
	}
	for _, o := range m2.Outputs() {
		if o.Immutable && slices.Contains(invs[0].Paths, "/"+o.Path) {
			t.Errorf("hashed asset %s was invalidated", o.Path)
		}
	}
	if diff := cmp.Diff([]string{dist + "/" + invs[0].ID}, res.Invalidations); diff != "" {
		t.Errorf("result invalidations (-want +got):\n%s", diff)
	}
	deploy(v2) // no change: no invalidation
	if got := len(m.Invalidations(t, dist)); got != 2 {
		t.Errorf("after a no-change redeploy: got %d invalidations, want still 2", got)
	}
}
