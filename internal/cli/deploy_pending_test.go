package cli

import (
	"slices"
	"strings"
	"testing"

	"github.com/assetctl/assetctl/internal/testsite"
	"github.com/assetctl/assetctl/internal/testsvc"
	"github.com/assetctl/assetctl/uploader"
)

// A deploy whose CloudFront invalidation fails (here: an unknown
// distribution) exits non-zero with its pages published; rerunning it with
// a working distribution sends exactly the pending paths, once.
func TestDeployRerunCompletesInvalidation(t *testing.T) {
	e := newDeployEnv(t)
	moto := testsvc.StartMoto(t)
	dist := moto.CreateDistribution(t)
	deploy := func(dir, distribution string) (int, string) {
		t.Helper()
		// --origin-path: the unknown distribution's configuration cannot be
		// read, and the deploy must get as far as invalidating.
		code, _, stderr := run(t, "deploy", dir, "--bucket", "s3://"+testBucket+"/site", "--endpoint", e.s3.Endpoint,
			"--cloudfront-distribution", distribution, "--cloudfront-endpoint", moto.URL, "--origin-path", "/site")
		return code, stderr
	}
	dir0, _ := writeSite(t, testsite.Spec{})
	if code, stderr := deploy(dir0, dist); code != 0 {
		t.Fatalf("first deploy: exit %d: %s", code, stderr)
	}
	dir1, _ := writeSite(t, testsite.Spec{PageEdits: map[int]string{1: "<p>second edition</p>"}})
	code, stderr := deploy(dir1, "EUNKNOWNDIST00")
	if code == 0 {
		t.Fatalf("deploy to an unknown distribution: got exit 0, want non-zero")
	}
	if !strings.Contains(stderr, "rerun") {
		t.Errorf("failed invalidation: stderr %q does not tell the user to rerun", stderr)
	}
	pages, keys, _ := e.published(t, "site/")
	if !strings.Contains(string(pages["docs/index.html"]), "second edition") {
		t.Errorf("the new page was not published before the invalidation failed")
	}
	pending := 0
	for k := range keys {
		if strings.HasPrefix(k, uploader.PendingDir) {
			pending++
		}
	}
	if pending != 1 {
		t.Errorf("got %d pending-invalidation markers, want 1", pending)
	}

	if code, stderr := deploy(dir1, dist); code != 0 {
		t.Fatalf("rerun: exit %d: %s", code, stderr)
	}
	invs := moto.Invalidations(t, dist)
	if len(invs) != 2 {
		t.Fatalf("after the rerun: got %d invalidations, want 2", len(invs))
	}
	if got, want := sorted(invs[1].Paths), []string{"/docs", "/docs/", "/docs/index.html"}; !slices.Equal(got, want) {
		t.Errorf("rerun invalidated %v, want the pending %v", got, want)
	}
	if code, stderr := deploy(dir1, dist); code != 0 {
		t.Fatalf("second rerun: exit %d: %s", code, stderr)
	}
	if n := len(moto.Invalidations(t, dist)); n != 2 {
		t.Errorf("second rerun: got %d invalidations, want still 2 (nothing pending)", n)
	}
}
