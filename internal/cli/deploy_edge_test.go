package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/assetctl/assetctl/internal/testsite"
	"github.com/assetctl/assetctl/internal/testsvc"
)

// edgeSite is newDeployEnv's bucket, readable anonymously as a public
// origin behind a CDN is.
func edgeSite(t *testing.T) *testsvc.S3 {
	t.Helper()
	e := newDeployEnv(t)
	testsvc.AllowAnonymousRead(t, e.s3, testBucket)
	return e.s3
}

// deployJSON runs assetctl deploy with --json and decodes the result.
func deployJSON(t *testing.T, args ...string) (invalidations []string) {
	t.Helper()
	code, out, errOut := run(t, append([]string{"deploy", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("assetctl deploy %s: exit %d\n%s", strings.Join(args, " "), code, errOut)
	}
	var res struct {
		Invalidations []string `json:"invalidations"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("decode deploy --json output: %v\n%s", err, out)
	}
	return res.Invalidations
}

// edgeGet fetches base/path and returns the body and Varnish's X-Cache.
func edgeGet(t *testing.T, base, path string) (body, xcache string) {
	t.Helper()
	resp, err := http.Get(base + "/" + path)
	if err != nil {
		t.Fatalf("GET %s/%s: %v", base, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s/%s: %v", base, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/%s: got %s, want 200 OK", base, path, resp.Status)
	}
	return string(b), resp.Header.Get("X-Cache")
}

func built(t *testing.T, dir, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(path)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// assetctl deploy --purge through a real Varnish in front of versitygw:
// after deploying v2 the edge serves the new page, old and new hashed
// assets both resolve, and no asset (nor any unchanged page) was purged.
func TestDeployPurgeThroughVarnish(t *testing.T) {
	s := edgeSite(t)
	edge := testsvc.StartVarnish(t, testsvc.VarnishOptions{Backend: strings.TrimPrefix(s.Endpoint, "http://")})
	base := edge.URL + "/" + testBucket + "/www"
	// The purge base URL is where the edge serves the bucket root.
	flags := []string{"--bucket", "s3://" + testBucket + "/www", "--endpoint", s.Endpoint, "--purge", edge.URL + "/" + testBucket}

	spec := testsite.Spec{Pages: 6, Images: 3}
	v1, m1 := writeSite(t, spec)
	deployJSON(t, append([]string{v1}, flags...)...)
	for _, o := range m1.Outputs() {
		if body, _ := edgeGet(t, base, o.Path); body != built(t, v1, o.Path) {
			t.Fatalf("edge GET %s: bytes differ from v1's", o.Path)
		}
		if _, xc := edgeGet(t, base, o.Path); xc != "HIT" {
			t.Fatalf("edge GET %s again: got X-Cache %q, want HIT", o.Path, xc)
		}
	}

	// v2: image 0 gets new bytes (a new hashed name), so pages 0 and 3,
	// which show it, change; nothing else does.
	spec.ImageEdits = map[int]string{0: "v2"}
	v2, m2 := writeSite(t, spec)
	purgedBefore := edge.Counter(t, "MAIN.n_obj_purged")
	invs := deployJSON(t, append([]string{v2}, flags...)...)
	if diff := cmp.Diff([]string{"purge:4"}, invs); diff != "" { // /www, /www/, /www/index.html, /www/docs/s3/p3.html
		t.Errorf("invalidations (-want +got):\n%s", diff)
	}
	changed := []string{"index.html", "docs/s3/p3.html"}
	if got := edge.Counter(t, "MAIN.n_obj_purged") - purgedBefore; got != uint64(len(changed)) {
		t.Errorf("varnish purged %d cached objects, want %d (the changed pages)", got, len(changed))
	}
	for _, p := range changed {
		if body, xc := edgeGet(t, base, p); body != built(t, v2, p) {
			t.Errorf("edge serves %s: got the stale page (X-Cache %s), want v2's", p, xc)
		}
	}
	for _, o := range m1.Outputs() {
		if slices.Contains(changed, o.Path) {
			continue
		}
		if body, xc := edgeGet(t, base, o.Path); xc != "HIT" || body != built(t, v1, o.Path) {
			t.Errorf("edge GET %s: got X-Cache %q, want the cached object (HIT): it must not be purged", o.Path, xc)
		}
	}
	oldImg, _ := m1.Lookup("img/i0000.png")
	newImg, _ := m2.Lookup("img/i0000.png")
	if oldImg.Path == newImg.Path {
		t.Fatalf("image 0 kept its name %s; the test needs a new hash", oldImg.Path)
	}
	if body, _ := edgeGet(t, base, oldImg.Path); body != built(t, v1, oldImg.Path) {
		t.Errorf("old asset %s does not resolve through the edge", oldImg.Path)
	}
	if body, _ := edgeGet(t, base, newImg.Path); body != built(t, v2, newImg.Path) {
		t.Errorf("new asset %s does not resolve through the edge", newImg.Path)
	}
}

// assetctl deploy --cloudfront-distribution against moto invalidates the
// changed pages plus their directory forms, never a hashed asset, and
// --wait accepts moto's COMPLETED.
func TestDeployCloudFrontPaths(t *testing.T) {
	s := edgeSite(t)
	m := testsvc.StartMoto(t)
	dist := m.CreateDistributionFor(t, testBucket, "/cf") // viewers see the prefix at the root
	flags := []string{"--bucket", "s3://" + testBucket + "/cf", "--endpoint", s.Endpoint,
		"--cloudfront-distribution", dist, "--cloudfront-endpoint", m.URL, "--wait"}

	spec := testsite.Spec{Pages: 6, Images: 3}
	v1, _ := writeSite(t, spec)
	deployJSON(t, append([]string{v1}, flags...)...)
	before := len(m.Invalidations(t, dist))

	// v2 edits docs/index.html and gives image 1 new bytes (pages 1 and 4).
	spec.PageEdits = map[int]string{1: "<p>new docs</p>"}
	spec.ImageEdits = map[int]string{1: "v2"}
	v2, m2 := writeSite(t, spec)
	invs := deployJSON(t, append([]string{v2}, flags...)...)

	all := m.Invalidations(t, dist)
	if len(all) != before+1 {
		t.Fatalf("the v2 deploy made %d invalidations, want 1", len(all)-before)
	}
	got := all[len(all)-1]
	want := []string{"/docs", "/docs/", "/docs/index.html", "/docs/s4/p4.html"}
	if diff := cmp.Diff(want, got.Paths); diff != "" {
		t.Errorf("invalidated paths (-want +got):\n%s", diff)
	}
	for _, o := range m2.Outputs() {
		if o.Immutable && slices.Contains(got.Paths, "/"+o.Path) {
			t.Errorf("hashed asset %s was invalidated", o.Path)
		}
	}
	if diff := cmp.Diff([]string{fmt.Sprintf("%s/%s", dist, got.ID)}, invs); diff != "" {
		t.Errorf("reported invalidations (-want +got):\n%s", diff)
	}

	// The same deploy again changes nothing and invalidates nothing.
	deployJSON(t, append([]string{v2}, flags...)...)
	if n := len(m.Invalidations(t, dist)); n != before+1 {
		t.Errorf("a no-change redeploy made %d more invalidations, want 0", n-before-1)
	}
}
