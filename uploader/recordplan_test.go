package uploader_test

import (
	"context"
	"strings"
	"testing"

	"github.com/assetctl/assetctl/internal/testsite"
	"github.com/assetctl/assetctl/uploader"
)

// lists counts the LIST requests among logged requests (GET of the bucket
// itself, "GET /bucket").
func lists(reqs []string) int {
	n := 0
	for _, r := range reqs {
		if r == "GET /"+bucket || strings.HasPrefix(r, "GET /"+bucket+"?") {
			n++
		}
	}
	return n
}

// A one-page change plans from the deploy records: the server's own log
// shows one LIST (the record folder) and at most 10 requests in all, and
// no HEAD of anything the records vouch for. With Verify the same change
// lists the whole prefix too.
func TestOnePageChangePlansFromRecords(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	st := e.store(e.s3.Endpoint)
	spec := testsite.Spec{Pages: 40, Images: 10}
	v1, _ := site(t, spec)
	if _, err := e.deployer(st, uploader.Options{Prefix: "site"}).Deploy(ctx, v1); err != nil {
		t.Fatalf("deploy v1: %v", err)
	}
	spec.PageEdits = map[int]string{7: "<p>one page changed</p>"}
	v2, m2 := site(t, spec)

	mark := e.s3.Mark(t)
	res, err := e.deployer(st, uploader.Options{Prefix: "site"}).Deploy(ctx, v2)
	if err != nil {
		t.Fatalf("deploy v2: %v", err)
	}
	reqs := e.s3.Requests(t, mark)
	if res.Plan.Listed || res.Plan.Heads > 1 {
		t.Errorf("plan: listed %v, %d HEADs; want a plan from the records with at most the sentinel's HEAD", res.Plan.Listed, res.Plan.Heads)
	}
	if n := lists(reqs); n != 1 {
		t.Errorf("got %d LIST requests, want 1 (the record folder):\n%s", n, strings.Join(reqs, "\n"))
	}
	t.Logf("one-page change: %d requests: %s", len(reqs), strings.Join(reqs, ", "))
	if len(reqs) > 10 {
		t.Errorf("a one-page change took %d requests, want at most 10:\n%s", len(reqs), strings.Join(reqs, "\n"))
	}
	if res.Uploaded != 1 || len(res.Plan.Pages) != 1 {
		t.Errorf("uploaded %d files (pages %v), want the one changed page", res.Uploaded, res.Plan.Pages)
	}
	e.checkPublished("site/", m2)

	// The same change planned with Verify lists the prefix.
	spec.PageEdits = map[int]string{7: "<p>changed again</p>"}
	v3, m3 := site(t, spec)
	mark = e.s3.Mark(t)
	res, err = e.deployer(st, uploader.Options{Prefix: "site", Verify: true}).Deploy(ctx, v3)
	if err != nil {
		t.Fatalf("deploy v3 with Verify: %v", err)
	}
	if n := lists(e.s3.Requests(t, mark)); !res.Plan.Listed || n < 2 || len(res.Plan.Drifted) != 0 {
		t.Errorf("Verify: listed %v with %d LISTs, drift %v; want the prefix listed and no drift", res.Plan.Listed, n, res.Plan.Drifted)
	}
	e.checkPublished("site/", m3)
}

// Objects deleted or overwritten by hand are invisible to a plan from the
// records; Verify lists the prefix, reports them as drift, and puts them
// back.
func TestVerifyRepairsDrift(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	st := e.store(e.s3.Endpoint)
	dir, m := site(t, testsite.Spec{Pages: 6, Images: 3})
	if _, err := e.deployer(st, uploader.Options{Prefix: "site"}).Deploy(ctx, dir); err != nil {
		t.Fatalf("deploy: %v", err)
	}
	asset := m.Files["img/i0001.png"].Path
	page := "about.html"
	if _, ok := m.Files[page]; !ok {
		page = m.Outputs()[0].Path
		for _, o := range m.Outputs() {
			if !o.Immutable && o.Path != "index.html" {
				page = o.Path
				break
			}
		}
	}
	if err := st.Delete(ctx, []string{"site/" + asset}); err != nil {
		t.Fatal(err)
	}
	junk := "overwritten by hand"
	if err := st.Put(ctx, "site/"+page, strings.NewReader(junk), int64(len(junk)), uploader.Headers{ContentType: "text/html"}); err != nil {
		t.Fatal(err)
	}

	res, err := e.deployer(st, uploader.Options{Prefix: "site", Verify: true}).Deploy(ctx, dir)
	if err != nil {
		t.Fatalf("deploy with Verify: %v", err)
	}
	want := []string{asset + " (missing)", page + " (changed)"}
	for _, w := range want {
		found := false
		for _, d := range res.Plan.Drifted {
			found = found || d == w
		}
		if !found {
			t.Errorf("drift %v lacks %q", res.Plan.Drifted, w)
		}
	}
	if res.Uploaded != 2 {
		t.Errorf("Verify uploaded %d files, want the 2 that drifted", res.Uploaded)
	}
	e.checkPublished("site/", m)
}
