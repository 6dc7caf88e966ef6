package uploader_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/assetctl/assetctl/internal/testsvc"
	"github.com/assetctl/assetctl/uploader"
)

// newCloudFront is an invalidator pointed at endpoint (moto, or a proxy in
// front of it) that polls fast.
func newCloudFront(t *testing.T, m *testsvc.Moto, endpoint string, opts uploader.CloudFrontOptions) *uploader.CloudFront {
	t.Helper()
	opts.Endpoint = endpoint
	if opts.PollInterval == 0 {
		opts.PollInterval = 10 * time.Millisecond
	}
	cf, err := uploader.NewCloudFront(m.AWSConfig(), opts)
	if err != nil {
		t.Fatalf("NewCloudFront: %v", err)
	}
	return cf
}

type recorded struct {
	Ref   string
	Paths []string
}

func recordedBy(t *testing.T, m *testsvc.Moto, dist string) []recorded {
	t.Helper()
	var out []recorded
	for _, inv := range m.Invalidations(t, dist) {
		out = append(out, recorded{Ref: inv.CallerReference, Paths: inv.Paths})
	}
	return out
}

func TestCloudFrontAgainstMoto(t *testing.T) {
	m := testsvc.StartMoto(t)
	ctx := context.Background()

	t.Run("exact escaped paths", func(t *testing.T) {
		dist := m.CreateDistribution(t)
		cf := newCloudFront(t, m, m.URL, uploader.CloudFrontOptions{DistributionIDs: []string{dist}})
		id, err := cf.Invalidate(ctx, []string{"/index.html", "/docs/index.html", "/docs/", "/docs", "/a b/café.html", "/index.html"}, "build-1")
		if err != nil {
			t.Fatalf("Invalidate: %v", err)
		}
		want := []recorded{{Ref: "build-1", Paths: []string{"/a%20b/caf%C3%A9.html", "/docs", "/docs/", "/docs/index.html", "/index.html"}}}
		if diff := cmp.Diff(want, recordedBy(t, m, dist)); diff != "" {
			t.Errorf("moto recorded (-want +got):\n%s", diff)
		}
		invs := m.Invalidations(t, dist)
		if wantID := dist + "/" + invs[0].ID; id != wantID {
			t.Errorf("got ID %q, want %q", id, wantID)
		}
	})

	t.Run("same caller reference twice makes one invalidation", func(t *testing.T) {
		dist := m.CreateDistribution(t)
		cf := newCloudFront(t, m, m.URL, uploader.CloudFrontOptions{DistributionIDs: []string{dist}})
		paths := []string{"/index.html", "/about/"}
		id1, err := cf.Invalidate(ctx, paths, "build-2")
		if err != nil {
			t.Fatalf("first Invalidate: %v", err)
		}
		id2, err := cf.Invalidate(ctx, []string{"/about/", "/index.html"}, "build-2")
		if err != nil {
			t.Fatalf("second Invalidate: %v", err)
		}
		if id1 != id2 {
			t.Errorf("got IDs %q then %q, want the same invalidation twice", id1, id2)
		}
		if got := len(m.Invalidations(t, dist)); got != 1 {
			t.Errorf("got %d invalidations, want 1", got)
		}
		if _, err := cf.Invalidate(ctx, paths, "build-3"); err != nil {
			t.Fatalf("Invalidate with a new reference: %v", err)
		}
		if got := len(m.Invalidations(t, dist)); got != 2 {
			t.Errorf("after a new reference: got %d invalidations, want 2", got)
		}
	})

	t.Run("same reference with more paths invalidates only the rest", func(t *testing.T) {
		dist := m.CreateDistribution(t)
		cf := newCloudFront(t, m, m.URL, uploader.CloudFrontOptions{DistributionIDs: []string{dist}})
		if _, err := cf.Invalidate(ctx, []string{"/a.html"}, "build-4"); err != nil {
			t.Fatalf("first Invalidate: %v", err)
		}
		for range 2 { // the retry of the retry reuses the second one
			if _, err := cf.Invalidate(ctx, []string{"/a.html", "/b.html"}, "build-4"); err != nil {
				t.Fatalf("second Invalidate: %v", err)
			}
		}
		got := recordedBy(t, m, dist)
		if len(got) != 2 {
			t.Fatalf("got %d invalidations %v, want 2", len(got), got)
		}
		if !strings.HasPrefix(got[1].Ref, "build-4+") {
			t.Errorf("got second reference %q, want one derived from build-4", got[1].Ref)
		}
		if diff := cmp.Diff([]string{"/b.html"}, got[1].Paths); diff != "" {
			t.Errorf("second invalidation's paths (-want +got):\n%s", diff)
		}
	})

	t.Run("wildcard collapse", func(t *testing.T) {
		many := func(n int, dir string) []string {
			var ps []string
			for i := range n {
				ps = append(ps, fmt.Sprintf("%s/page-%03d.html", dir, i))
			}
			return ps
		}
		tests := []struct {
			name     string
			maxPaths int
			paths    []string
			want     []string
		}{
			{"at the limit stays exact", 3, []string{"/a", "/b", "/c"}, []string{"/a", "/b", "/c"}},
			{"past the limit, one directory", 3, many(4, "/docs"), []string{"/docs/page-00*"}},
			{"past the limit, whole site", 3, []string{"/a", "/b", "/c", "/d/"}, []string{"/*"}},
			{"default limit 100 kept", 0, many(100, "/blog"), many(100, "/blog")},
			{"default limit 100 exceeded", 0, append(many(100, "/blog"), "/blog/"), []string{"/blog/*"}},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				dist := m.CreateDistribution(t)
				cf := newCloudFront(t, m, m.URL, uploader.CloudFrontOptions{DistributionIDs: []string{dist}, MaxPaths: tt.maxPaths})
				if _, err := cf.Invalidate(ctx, tt.paths, fmt.Sprintf("wild-%d", i)); err != nil {
					t.Fatalf("Invalidate: %v", err)
				}
				got := recordedBy(t, m, dist)
				if len(got) != 1 {
					t.Fatalf("got %d invalidations, want 1", len(got))
				}
				if diff := cmp.Diff(tt.want, got[0].Paths); diff != "" {
					t.Errorf("paths (-want +got):\n%s", diff)
				}
			})
		}
	})

	t.Run("several distributions and Wait", func(t *testing.T) {
		d1, d2 := m.CreateDistribution(t), m.CreateDistribution(t)
		cf := newCloudFront(t, m, m.URL, uploader.CloudFrontOptions{DistributionIDs: []string{d1, d2}})
		id, err := cf.Invalidate(ctx, []string{"/index.html"}, "build-5")
		if err != nil {
			t.Fatalf("Invalidate: %v", err)
		}
		for _, d := range []string{d1, d2} {
			want := []recorded{{Ref: "build-5", Paths: []string{"/index.html"}}}
			if diff := cmp.Diff(want, recordedBy(t, m, d)); diff != "" {
				t.Errorf("distribution %s recorded (-want +got):\n%s", d, diff)
			}
			if !strings.Contains(id, d+"/") {
				t.Errorf("got ID %q, want it to name distribution %s", id, d)
			}
		}
		if err := cf.Wait(ctx, id); err != nil {
			t.Errorf("Wait(%q) against moto's COMPLETED: %v", id, err)
		}
	})

	t.Run("no paths sends nothing", func(t *testing.T) {
		dist := m.CreateDistribution(t)
		cf := newCloudFront(t, m, m.URL, uploader.CloudFrontOptions{DistributionIDs: []string{dist}})
		id, err := cf.Invalidate(ctx, nil, "build-6")
		if err != nil || id != "" {
			t.Errorf("got (%q, %v), want (\"\", nil)", id, err)
		}
		if got := len(m.Invalidations(t, dist)); got != 0 {
			t.Errorf("got %d invalidations, want 0", got)
		}
		if err := cf.Wait(ctx, id); err != nil {
			t.Errorf("Wait(\"\"): %v", err)
		}
	})

	t.Run("unknown distribution", func(t *testing.T) {
		cf := newCloudFront(t, m, m.URL, uploader.CloudFrontOptions{DistributionIDs: []string{"ENOSUCHDIST"}})
		_, err := cf.Invalidate(ctx, []string{"/index.html"}, "build-7")
		if err == nil || !strings.Contains(err.Error(), "ENOSUCHDIST") {
			t.Errorf("got error %v, want one naming distribution ENOSUCHDIST", err)
		}
	})

	t.Run("bad paths", func(t *testing.T) {
		dist := m.CreateDistribution(t)
		cf := newCloudFront(t, m, m.URL, uploader.CloudFrontOptions{DistributionIDs: []string{dist}})
		for _, p := range []string{"index.html", "", "/a\nb"} {
			if _, err := cf.Invalidate(ctx, []string{"/ok", p}, "build-8"); !errors.Is(err, uploader.ErrInvalidPath) {
				t.Errorf("path %q: got error %v, want ErrInvalidPath", p, err)
			}
		}
		if _, err := cf.Invalidate(ctx, []string{"/ok"}, ""); err == nil {
			t.Errorf("empty caller reference: got no error, want one")
		}
		if got := len(m.Invalidations(t, dist)); got != 0 {
			t.Errorf("got %d invalidations after bad input, want 0", got)
		}
	})
}

func TestNewCloudFrontOptions(t *testing.T) {
	m := &testsvc.Moto{}
	tests := []struct {
		name string
		opts uploader.CloudFrontOptions
		ok   bool
	}{
		{"defaults", uploader.CloudFrontOptions{DistributionIDs: []string{"E1"}}, true},
		{"no distribution", uploader.CloudFrontOptions{}, false},
		{"empty distribution", uploader.CloudFrontOptions{DistributionIDs: []string{""}}, false},
		{"above the batch limit", uploader.CloudFrontOptions{DistributionIDs: []string{"E1"}, MaxPaths: 3001}, false},
		{"negative max paths", uploader.CloudFrontOptions{DistributionIDs: []string{"E1"}, MaxPaths: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := uploader.NewCloudFront(m.AWSConfig(), tt.opts)
			if got := err == nil; got != tt.ok {
				t.Errorf("got error %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// fakeCloudFrontProxy forwards to moto but lets a test rewrite answers moto
// cannot produce: invalidations still in progress, and AWS's
// InvalidationBatchAlreadyExists for a reused CallerReference.
type fakeCloudFrontProxy struct {
	srv *httptest.Server
	// inProgress is how many more GetInvalidation answers report
	// "InProgress" instead of moto's "COMPLETED" (-1: forever).
	inProgress atomic.Int64
	gets       atomic.Int64
	// onGet runs on every GetInvalidation.
	onGet func()
	// rejectRef makes a CreateInvalidation with this CallerReference fail
	// as AWS does when the reference was used with other paths.
	rejectRef string
}

func newFakeCloudFrontProxy(t *testing.T, m *testsvc.Moto) *fakeCloudFrontProxy {
	t.Helper()
	target, err := url.Parse(m.URL)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeCloudFrontProxy{}
	rp := httputil.NewSingleHostReverseProxy(target)
	isGetInvalidation := func(r *http.Request) bool {
		return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/invalidation/")
	}
	rp.ModifyResponse = func(resp *http.Response) error {
		if !isGetInvalidation(resp.Request) {
			return nil
		}
		f.gets.Add(1)
		if f.onGet != nil {
			f.onGet()
		}
		n := f.inProgress.Load()
		if n == 0 {
			return nil
		}
		if n > 0 {
			f.inProgress.Add(-1)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		resp.Body.Close()
		body = bytes.ReplaceAll(body, []byte("<Status>COMPLETED</Status>"), []byte("<Status>InProgress</Status>"))
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Del("Content-Length")
		return nil
	}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && f.rejectRef != "" && strings.HasSuffix(r.URL.Path, "/invalidation") {
			body, _ := io.ReadAll(r.Body)
			if bytes.Contains(body, []byte("<CallerReference>"+f.rejectRef+"</CallerReference>")) {
				w.Header().Set("Content-Type", "text/xml")
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprint(w, `<?xml version="1.0"?><ErrorResponse xmlns="http://cloudfront.amazonaws.com/doc/2020-05-31/"><Error><Type>Sender</Type><Code>InvalidationBatchAlreadyExists</Code><Message>Invalidation batch specified in the request already exists.</Message></Error><RequestId>fake</RequestId></ErrorResponse>`)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func TestCloudFrontWaitPollsUntilCompleted(t *testing.T) {
	m := testsvc.StartMoto(t)
	ctx := context.Background()
	dist := m.CreateDistribution(t)
	proxy := newFakeCloudFrontProxy(t, m)
	cf := newCloudFront(t, m, proxy.srv.URL, uploader.CloudFrontOptions{DistributionIDs: []string{dist}, Lookback: -1})
	id, err := cf.Invalidate(ctx, []string{"/index.html"}, "wait-1")
	if err != nil {
		t.Fatalf("Invalidate: %v", err)
	}

	t.Run("completes after polls", func(t *testing.T) {
		proxy.gets.Store(0)
		proxy.inProgress.Store(3)
		if err := cf.Wait(ctx, id); err != nil {
			t.Fatalf("Wait: %v", err)
		}
		if got := proxy.gets.Load(); got != 4 {
			t.Errorf("got %d GetInvalidation calls, want 4 (3 in progress, then completed)", got)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		proxy.gets.Store(0)
		proxy.inProgress.Store(-1)
		cctx, cancel := context.WithCancel(ctx)
		proxy.onGet = func() {
			if proxy.gets.Load() == 2 {
				cancel()
			}
		}
		err := cf.Wait(cctx, id)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got error %v, want context.Canceled", err)
		}
	})
}

func TestCloudFrontBatchAlreadyExists(t *testing.T) {
	m := testsvc.StartMoto(t)
	ctx := context.Background()
	dist := m.CreateDistribution(t)
	proxy := newFakeCloudFrontProxy(t, m)
	first := newCloudFront(t, m, m.URL, uploader.CloudFrontOptions{DistributionIDs: []string{dist}})
	if _, err := first.Invalidate(ctx, []string{"/a.html"}, "race-1"); err != nil {
		t.Fatalf("first Invalidate: %v", err)
	}
	// A second deploy with the same reference but more paths, which did
	// not see the first invalidation beforehand (Lookback disabled): AWS
	// refuses the batch, and the invalidator must invalidate the rest.
	proxy.rejectRef = "race-1"
	second := newCloudFront(t, m, proxy.srv.URL, uploader.CloudFrontOptions{DistributionIDs: []string{dist}, Lookback: -1})
	if _, err := second.Invalidate(ctx, []string{"/a.html", "/b.html"}, "race-1"); err != nil {
		t.Fatalf("second Invalidate: %v", err)
	}
	got := recordedBy(t, m, dist)
	if len(got) != 2 {
		t.Fatalf("got invalidations %v, want 2", got)
	}
	if diff := cmp.Diff([]string{"/b.html"}, got[1].Paths); diff != "" {
		t.Errorf("second invalidation's paths (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(got[1].Ref, "race-1+") {
		t.Errorf("got reference %q, want one derived from race-1", got[1].Ref)
	}
}
