package uploader_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/assetctl/assetctl/internal/testsvc"
	"github.com/assetctl/assetctl/uploader"
)

// origin is a tiny HTTP origin whose pages a test can change, counting the
// requests it serves per path.
type origin struct {
	mu    sync.Mutex
	files map[string]originFile // by escaped URL path
	hits  map[string]int
	srv   *httptest.Server
}

type originFile struct {
	body, cacheControl string
}

func newOrigin(t *testing.T) *origin {
	t.Helper()
	o := &origin{files: map[string]originFile{}, hits: map[string]int{}}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		defer o.mu.Unlock()
		p := r.URL.EscapedPath()
		o.hits[p]++
		f, ok := o.files[p]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", f.cacheControl)
		io.WriteString(w, f.body)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

func (o *origin) set(path, body, cacheControl string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.files[(&url.URL{Path: path}).EscapedPath()] = originFile{body, cacheControl}
}

func (o *origin) hitsOf(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.hits[(&url.URL{Path: path}).EscapedPath()]
}

func (o *origin) addr() string { return strings.TrimPrefix(o.srv.URL, "http://") }

// fetch GETs base+path (path unescaped) and returns the body and X-Cache.
func fetch(t *testing.T, base, path string) (body, xcache string) {
	t.Helper()
	u := base + (&url.URL{Path: path}).EscapedPath()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: got %s, want 200 OK", u, resp.Status)
	}
	return string(b), resp.Header.Get("X-Cache")
}

func TestPurgeAgainstVarnish(t *testing.T) {
	o := newOrigin(t)
	edge := testsvc.StartVarnish(t, testsvc.VarnishOptions{Backend: o.addr()})
	ctx := context.Background()

	const page, asset = "public, max-age=60", "public, max-age=31536000, immutable"
	files := map[string]string{ // path -> Cache-Control
		"/index.html":       page,
		"/docs/":            page,
		"/a b/café.html":    page,
		"/app.3f9a1c2e.js":  asset,
		"/about/index.html": page,
	}
	for p, cc := range files {
		o.set(p, "v1 "+p, cc)
	}
	for p := range files {
		if body, xc := fetch(t, edge.URL, p); body != "v1 "+p || xc != "MISS" {
			t.Fatalf("first GET %s: got %q (X-Cache %s), want %q (MISS)", p, body, xc, "v1 "+p)
		}
		if body, xc := fetch(t, edge.URL, p); body != "v1 "+p || xc != "HIT" {
			t.Fatalf("second GET %s: got %q (X-Cache %s), want %q (HIT)", p, body, xc, "v1 "+p)
		}
	}
	// The origin changes; the edge keeps serving what it cached.
	for p, cc := range files {
		o.set(p, "v2 "+p, cc)
	}
	for p := range files {
		if body, _ := fetch(t, edge.URL, p); body != "v1 "+p {
			t.Fatalf("GET %s after the origin changed, before any purge: got %q, want the stale %q", p, body, "v1 "+p)
		}
	}

	purged := []string{"/index.html", "/docs/", "/a b/café.html"}
	pg, err := uploader.NewPurge(edge.URL, uploader.PurgeOptions{})
	if err != nil {
		t.Fatalf("NewPurge: %v", err)
	}
	purgedBefore := edge.Counter(t, "MAIN.n_obj_purged")
	id, err := pg.Invalidate(ctx, purged, "build-1")
	if err != nil {
		t.Fatalf("Invalidate: %v", err)
	}
	if id != "purge:3" {
		t.Errorf("got ID %q, want purge:3", id)
	}
	if err := pg.Wait(ctx, id); err != nil {
		t.Errorf("Wait: %v", err)
	}
	if got := edge.Counter(t, "MAIN.n_obj_purged") - purgedBefore; got != uint64(len(purged)) {
		t.Errorf("varnish purged %d objects, want %d", got, len(purged))
	}

	for _, p := range purged {
		if body, xc := fetch(t, edge.URL, p); body != "v2 "+p || xc != "MISS" {
			t.Errorf("GET %s after its purge: got %q (X-Cache %s), want %q (MISS)", p, body, xc, "v2 "+p)
		}
		if got := o.hitsOf(p); got != 2 {
			t.Errorf("origin served %s %d times, want 2 (before and after the purge)", p, got)
		}
	}
	for _, p := range []string{"/app.3f9a1c2e.js", "/about/index.html"} {
		if body, xc := fetch(t, edge.URL, p); body != "v1 "+p || xc != "HIT" {
			t.Errorf("GET %s, which was not purged: got %q (X-Cache %s), want the cached %q (HIT)", p, body, xc, "v1 "+p)
		}
		if got := o.hitsOf(p); got != 1 {
			t.Errorf("origin served %s %d times, want 1 (still cached)", p, got)
		}
	}
}

// Varnish caches by Host and URL, so an edge reached by another address
// than the site's name is purged with PurgeOptions.Host.
func TestPurgeHostOverride(t *testing.T) {
	o := newOrigin(t)
	edge := testsvc.StartVarnish(t, testsvc.VarnishOptions{Backend: o.addr()})
	ctx := context.Background()
	get := func() string {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, edge.URL+"/index.html", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "www.example.com"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	o.set("/index.html", "v1", "public, max-age=60")
	get()
	o.set("/index.html", "v2", "public, max-age=60")

	byAddress, err := uploader.NewPurge(edge.URL, uploader.PurgeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := byAddress.Invalidate(ctx, []string{"/index.html"}, "r"); err != nil {
		t.Fatalf("Invalidate: %v", err)
	}
	if got := get(); got != "v1" {
		t.Fatalf("after a purge under the edge's address: got %q, want the stale v1 (another cache key)", got)
	}
	byName, err := uploader.NewPurge(edge.URL, uploader.PurgeOptions{Host: "www.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := byName.Invalidate(ctx, []string{"/index.html"}, "r"); err != nil {
		t.Fatalf("Invalidate: %v", err)
	}
	if got := get(); got != "v2" {
		t.Errorf("after a purge with Host www.example.com: got %q, want v2", got)
	}
}

func TestPurgeRefusedByEdge(t *testing.T) {
	o := newOrigin(t)
	// Only an address this test never uses may purge: Varnish answers 405.
	edge := testsvc.StartVarnish(t, testsvc.VarnishOptions{Backend: o.addr(), Purgers: []string{"192.0.2.1"}})
	pg, err := uploader.NewPurge(edge.URL+"/site/", uploader.PurgeOptions{})
	if err != nil {
		t.Fatalf("NewPurge: %v", err)
	}
	_, err = pg.Invalidate(context.Background(), []string{"/index.html"}, "build-1")
	var perr *uploader.PurgeError
	if !errors.As(err, &perr) {
		t.Fatalf("got error %v, want a *PurgeError", err)
	}
	if want := edge.URL + "/site/index.html"; perr.URL != want || perr.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("got %s %d, want %s 405", perr.URL, perr.StatusCode, want)
	}
	for _, want := range []string{edge.URL + "/site/index.html", "405 Not allowed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("got error %q, want it to contain %q", err, want)
		}
	}
}

// fakeFlakyEdge stands in for an edge that fails for a while: no real edge
// here answers 503 to PURGE on demand.
func fakeFlakyEdge(t *testing.T, failures int64, status int) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "PURGE" {
			http.Error(w, "want PURGE", http.StatusMethodNotAllowed)
			return
		}
		if r.Header.Get("Fastly-Key") != "k" {
			http.Error(w, "missing Fastly-Key", http.StatusUnauthorized)
			return
		}
		if calls.Add(1) <= failures {
			if status == http.StatusTooManyRequests {
				w.Header().Set("Retry-After", "1")
			}
			http.Error(w, "busy", status)
			return
		}
		io.WriteString(w, "purged")
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func TestPurgeRetries(t *testing.T) {
	ctx := context.Background()
	opts := uploader.PurgeOptions{RetryInterval: time.Millisecond, MaxTries: 4, Header: http.Header{"Fastly-Key": {"k"}}}
	tests := []struct {
		name      string
		failures  int64
		status    int
		wantCalls int64
		wantErr   bool
	}{
		{"503 then success", 2, http.StatusServiceUnavailable, 3, false},
		{"503 every time", 100, http.StatusServiceUnavailable, 4, true},
		{"429 then success", 1, http.StatusTooManyRequests, 2, false},
		{"429 every time, honouring Retry-After", 100, http.StatusTooManyRequests, 4, true},
		{"403 is not retried", 100, http.StatusForbidden, 1, true},
		{"404 counts as purged", 100, http.StatusNotFound, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, calls := fakeFlakyEdge(t, tt.failures, tt.status)
			pg, err := uploader.NewPurge(srv.URL, opts)
			if err != nil {
				t.Fatalf("NewPurge: %v", err)
			}
			_, err = pg.Invalidate(ctx, []string{"/index.html"}, "r")
			if (err != nil) != tt.wantErr {
				t.Errorf("got error %v, want error: %v", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("got a multi-line error %q, want one line", err)
			}
			if got := calls.Load(); got != tt.wantCalls {
				t.Errorf("got %d requests, want %d", got, tt.wantCalls)
			}
		})
	}

	t.Run("connection refused, then the edge comes up", func(t *testing.T) {
		port := testsvc.FreePort(t)
		var calls atomic.Int64
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })}
		var once sync.Once
		pg, err := uploader.NewPurge("http://"+testsvc.Addr(port), uploader.PurgeOptions{
			RetryInterval: 20 * time.Millisecond, MaxTries: 50,
			// Bring the edge up only after the first refused attempt.
			Client: &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
				once.Do(func() {
					l, lerr := net.Listen("tcp", testsvc.Addr(port))
					if lerr != nil {
						t.Errorf("listen: %v", lerr)
						return
					}
					go srv.Serve(l)
				})
				return c, err
			}}},
		})
		if err != nil {
			t.Fatalf("NewPurge: %v", err)
		}
		t.Cleanup(func() { srv.Close() })
		if _, err := pg.Invalidate(ctx, []string{"/index.html"}, "r"); err != nil {
			t.Fatalf("Invalidate: %v", err)
		}
		if got := calls.Load(); got != 1 {
			t.Errorf("edge got %d purges, want 1", got)
		}
	})

	t.Run("edge never comes up", func(t *testing.T) {
		port := testsvc.FreePort(t)
		pg, err := uploader.NewPurge("http://"+testsvc.Addr(port), uploader.PurgeOptions{RetryInterval: time.Millisecond, MaxTries: 3})
		if err != nil {
			t.Fatalf("NewPurge: %v", err)
		}
		_, err = pg.Invalidate(ctx, []string{"/index.html"}, "r")
		if err == nil || !strings.Contains(err.Error(), testsvc.Addr(port)+"/index.html") {
			t.Errorf("got error %v, want one naming the URL", err)
		}
	})
}

func TestNewPurgeOptions(t *testing.T) {
	tests := []struct {
		base string
		ok   bool
	}{
		{"http://127.0.0.1:6081", true},
		{"https://edge.example.com/site/", true},
		{"127.0.0.1:6081", false},
		{"ftp://edge", false},
		{"http://", false},
		{"http://edge/?x=1", false},
	}
	for _, tt := range tests {
		t.Run(tt.base, func(t *testing.T) {
			_, err := uploader.NewPurge(tt.base, uploader.PurgeOptions{})
			if got := err == nil; got != tt.ok {
				t.Errorf("NewPurge(%q): got error %v, want ok=%v", tt.base, err, tt.ok)
			}
		})
	}
}

func TestPurgeURL(t *testing.T) {
	pg, err := uploader.NewPurge("http://127.0.0.1:6081/site/", uploader.PurgeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]string{
		"/index.html":    "http://127.0.0.1:6081/site/index.html",
		"/docs/":         "http://127.0.0.1:6081/site/docs/",
		"/a b/café.html": "http://127.0.0.1:6081/site/a%20b/caf%C3%A9.html",
		"/100%.html":     "http://127.0.0.1:6081/site/100%25.html",
	}
	for in, want := range tests {
		if got := pg.URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}
