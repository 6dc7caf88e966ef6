package uploader_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/assetctl/assetctl/internal/testsite"
	"github.com/assetctl/assetctl/uploader"
)

// Points 2, 3 and 5: a cold deploy publishes everything with the right
// headers; a no-change redeploy writes nothing and invalidates nothing; a
// changed page and image write exactly those plus the record, and only the
// page is invalidated (with its directory forms).
func TestDeployIncremental(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	st := e.store(e.s3.Endpoint)
	cdn := &recorder{}
	d := e.deployer(st, uploader.Options{Prefix: "site", Invalidators: []uploader.Invalidator{cdn}, Wait: true})

	dir, m := site(t, testsite.Spec{})
	res, err := d.Deploy(ctx, dir)
	if err != nil {
		t.Fatalf("cold deploy: %v", err)
	}
	if got, want := res.Uploaded, len(m.Outputs()); got != want {
		t.Errorf("cold deploy uploaded %d files, want %d", got, want)
	}
	objs := e.checkPublished("site/", m)
	var records int
	for k := range objs {
		if strings.HasPrefix(k, "site/"+uploader.RecordDir) {
			records++
		}
	}
	if records != 1 {
		t.Errorf("got %d deploy records, want 1", records)
	}
	if len(cdn.waits) != 1 {
		t.Errorf("--wait: got %d waits, want 1", len(cdn.waits))
	}

	t.Run("no change", func(t *testing.T) {
		mark := e.s3.Mark(t)
		calls := len(cdn.calls)
		res, err := d.Deploy(ctx, dir)
		if err != nil {
			t.Fatalf("redeploy: %v", err)
		}
		if puts := e.puts(mark); len(puts) != 0 {
			t.Errorf("no-change redeploy wrote %v, want nothing", puts)
		}
		// The bucket check and one HEAD of the previous deploy's sentinel
		// page, which proves that deploy completed; no listing of the prefix.
		if heads := e.s3.Requests(t, mark, "HEAD"); len(heads) > 2 {
			t.Errorf("no-change redeploy sent HEADs %v, want the bucket check and the sentinel only", heads)
		}
		if res.Plan.Heads != 1 {
			t.Errorf("no-change redeploy planned with %d HEADs, want 1 (the sentinel)", res.Plan.Heads)
		}
		if len(cdn.calls) != calls {
			t.Errorf("no-change redeploy invalidated %v, want nothing", cdn.calls[calls:])
		}
		if res.Uploaded != 0 || res.Plan.Record != "" {
			t.Errorf("got uploaded %d record %q, want 0 and none", res.Uploaded, res.Plan.Record)
		}
	})

	t.Run("one page and one image changed", func(t *testing.T) {
		dir2, m2 := site(t, testsite.Spec{PageEdits: map[int]string{1: "<p>new</p>"}, ImageEdits: map[int]string{1: "salt"}})
		mark := e.s3.Mark(t)
		calls := len(cdn.calls)
		res, err := d.Deploy(ctx, dir2)
		if err != nil {
			t.Fatalf("deploy: %v", err)
		}
		newImage := m2.Files["img/i0001.png"].Path
		// The two files and the record, plus (with a CDN) the marker of
		// the pending invalidation, written before the page and deleted
		// (one POST ?delete) once the CDN accepted it.
		want := []string{"PUT /site-bucket/" + res.Plan.Record, "PUT /site-bucket/site/docs/index.html", "PUT /site-bucket/site/" + newImage, "POST /site-bucket"}
		slices.Sort(want)
		var got []string
		markers := 0
		for _, w := range e.puts(mark) {
			if strings.HasPrefix(w, "PUT /site-bucket/site/"+uploader.PendingDir) && strings.HasSuffix(w, "-"+m2.BuildID+".json") {
				markers++
				continue
			}
			got = append(got, w)
		}
		if markers != 1 {
			t.Errorf("got %d pending-invalidation markers written, want 1", markers)
		}
		if !slices.Equal(got, want) {
			t.Errorf("writes besides the pending marker: got %v, want %v", got, want)
		}
		if left := e.inspect("site/" + uploader.PendingDir); len(left) != 0 {
			t.Errorf("pending-invalidation markers left after a successful invalidation: %v", slices.Collect(maps.Keys(left)))
		}
		if len(cdn.calls) != calls+1 {
			t.Fatalf("got %d invalidations, want 1", len(cdn.calls)-calls)
		}
		if got, want := cdn.calls[calls], []string{"/site/docs", "/site/docs/", "/site/docs/index.html"}; !slices.Equal(got, want) { // bucket paths
			t.Errorf("invalidated %v, want %v", got, want)
		}
		if !strings.Contains(cdn.refs[calls], m2.BuildID) {
			t.Errorf("caller reference %q does not derive from build ID %s", cdn.refs[calls], m2.BuildID)
		}
		e.checkPublished("site/", m2)
		// The old image stays: the previous deploy's pages may still be cached.
		if _, ok := e.inspect("site/img/")["site/"+m.Files["img/i0001.png"].Path]; !ok {
			t.Errorf("old image %s was deleted, want it kept for the grace period", m.Files["img/i0001.png"].Path)
		}
	})
}

func TestInvalidationPaths(t *testing.T) {
	tests := []struct {
		in   []string
		want []string
	}{
		{[]string{"index.html"}, []string{"/", "/index.html"}},
		{[]string{"docs/index.html"}, []string{"/docs", "/docs/", "/docs/index.html"}},
		{[]string{"a/b/c.html", "robots.txt"}, []string{"/a/b/c.html", "/robots.txt"}},
		{[]string{"docs/index.html", "docs/index.html"}, []string{"/docs", "/docs/", "/docs/index.html"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.in), func(t *testing.T) {
			if got := uploader.InvalidationPaths(tt.in); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// Pages the site dropped are deleted after the new pages are live, and
// invalidated; assets they used stay for the grace period.
func TestDroppedPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	cdn := &recorder{}
	d := e.deployer(e.store(e.s3.Endpoint), uploader.Options{Invalidators: []uploader.Invalidator{cdn}})
	dir0, m0 := site(t, testsite.Spec{Pages: 10})
	dir1, m1 := site(t, testsite.Spec{Pages: 8})
	for _, dir := range []string{dir0, dir1} {
		if _, err := d.Deploy(ctx, dir); err != nil {
			t.Fatalf("deploy: %v", err)
		}
	}
	objs := e.checkPublished("", m1)
	for _, src := range []string{"docs/s1/p8.html", "docs/s2/p9.html"} {
		if _, ok := objs[m0.Files[src].Path]; ok {
			t.Errorf("dropped page %s is still published", src)
		}
	}
	if got, want := cdn.calls[1], []string{"/docs/s1/p8.html", "/docs/s2/p9.html"}; !slices.Equal(got, want) {
		t.Errorf("invalidated %v, want %v", got, want)
	}
}
