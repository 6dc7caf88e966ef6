package origin

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/assetctl/assetctl/internal/testsvc"
	"github.com/prometheus/client_golang/prometheus"
)

// edgeGet fetches path through the edge and returns its body and X-Cache.
func edgeGet(t *testing.T, base, path string) (string, string) {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatalf("GET %s through the edge: %v", path, err)
	}
	body := readBody(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s through the edge: %s %s", path, resp.Status, body)
	}
	return strings.ReplaceAll(body, " ", ""), resp.Header.Get("X-Cache")
}

// startOrigin serves h on a loopback port and returns its host:port.
func startOrigin(t *testing.T, h http.Handler) string {
	t.Helper()
	s := newTestServer(t, h, ServerOptions{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx, l); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return l.Addr().String()
}

// TestEdgePurgeThroughVarnish: documents cached at a real Varnish edge
// (xkey vmod); after a PUT returns, the edge serves the new version while
// an unrelated cached document stays cached; the list page is purged too.
func TestEdgePurgeThroughVarnish(t *testing.T) {
	st := newStack(t, stackConfig{})
	var api *API
	origin := startOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { api.ServeHTTP(w, r) }))
	edge := testsvc.StartVarnish(t, testsvc.VarnishOptions{Backend: origin, Xkey: true})
	reg := prometheus.NewRegistry()
	api = newTestAPI(t, st, func(o *APIOptions) {
		o.Purger = NewXkeyPurger(edge.URL, &http.Client{Timeout: 5 * time.Second})
		o.Registerer = reg
	})
	want(t, call(t, api, "PUT", "/api/products/p1", `{"v":1}`, auth...), 201)
	want(t, call(t, api, "PUT", "/api/products/p2", `{"v":1}`, auth...), 201)
	for _, p := range []string{"/api/products/p1", "/api/products/p2", "/api/products"} {
		edgeGet(t, edge.URL, p)
		if _, xc := edgeGet(t, edge.URL, p); xc != "HIT" {
			t.Fatalf("second GET %s through the edge: X-Cache %q, want HIT", p, xc)
		}
	}

	want(t, call(t, api, "PUT", "/api/products/p1", `{"v":2}`, auth...), 200)

	if body, xc := edgeGet(t, edge.URL, "/api/products/p1"); body != `{"v":2}` || xc != "MISS" {
		t.Errorf("p1 through the edge after the PUT: got %s (X-Cache %s), want {\"v\":2} fetched anew", body, xc)
	}
	if body, xc := edgeGet(t, edge.URL, "/api/products/p2"); body != `{"v":1}` || xc != "HIT" {
		t.Errorf("p2 (unrelated) through the edge: got %s (X-Cache %s), want the cached {\"v\":1} HIT", body, xc)
	}
	if body, xc := edgeGet(t, edge.URL, "/api/products"); !strings.Contains(body, `"v":2`) || xc != "MISS" {
		t.Errorf("the list through the edge after the PUT: got %s (X-Cache %s), want the new version", body, xc)
	}
	// DELETE and PATCH purge too.
	want(t, call(t, api, "PATCH", "/api/products/p2", `{"v":3}`, with(auth, []string{"Content-Type", "application/merge-patch+json"})...), 200)
	if body, _ := edgeGet(t, edge.URL, "/api/products/p2"); body != `{"v":3}` {
		t.Errorf("p2 through the edge after PATCH: got %s", body)
	}
	want(t, call(t, api, "DELETE", "/api/products/p2", "", auth...), 204)
	resp, err := http.Get(edge.URL + "/api/products/p2")
	if err != nil {
		t.Fatal(err)
	}
	if readBody(t, resp); resp.StatusCode != 404 {
		t.Errorf("p2 through the edge after DELETE: got %d, want 404", resp.StatusCode)
	}
	if got := testutilValue(api.edge.results.WithLabelValues("ok")); got != 5 {
		t.Errorf("origin_edge_purges_total{result=ok}: got %v, want 5 (3 PUTs, PATCH, DELETE)", got)
	}
}

// flakyPurger wraps a real purger and fails its first n calls, as an edge
// that is briefly unreachable would.
type flakyPurger struct {
	p     Purger
	fails atomic.Int32
	calls atomic.Int32
}

func (f *flakyPurger) Purge(ctx context.Context, tags []string) error {
	f.calls.Add(1)
	if f.fails.Add(-1) >= 0 {
		return errors.New("connection refused (flaky purger)")
	}
	return f.p.Purge(ctx, tags)
}

// TestEdgePurgeFailures: a purge that fails is retried with backoff in
// the background and the write still succeeds; one that keeps failing (an
// edge whose ACL refuses this origin) is given up, logged and counted.
func TestEdgePurgeFailures(t *testing.T) {
	st := newStack(t, stackConfig{NoCache: true})
	var api *API
	origin := startOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { api.ServeHTTP(w, r) }))
	edge := testsvc.StartVarnish(t, testsvc.VarnishOptions{Backend: origin, Xkey: true})
	flaky := &flakyPurger{p: NewXkeyPurger(edge.URL, nil)}
	flaky.fails.Store(2)
	api = newTestAPI(t, st, func(o *APIOptions) { o.Purger = flaky })
	want(t, call(t, api, "PUT", "/api/products/r1", `{"v":1}`, auth...), 201)
	edgeGet(t, edge.URL, "/api/products/r1")
	want(t, call(t, api, "PUT", "/api/products/r1", `{"v":2}`, auth...), 200)
	if err := api.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := testutilValue(api.edge.results.WithLabelValues("retried")); got != 1 || flaky.calls.Load() != 4 {
		t.Errorf("retried purges: got %v after %d calls, want 1 after 4 (first write ok, then 2 failures and a success)", got, flaky.calls.Load())
	}
	if body, _ := edgeGet(t, edge.URL, "/api/products/r1"); body != `{"v":2}` {
		t.Errorf("after the retried purge the edge serves %s", body)
	}

	refusing := testsvc.StartVarnish(t, testsvc.VarnishOptions{Backend: origin, Xkey: true, Purgers: []string{"192.0.2.1"}})
	err := NewXkeyPurger(refusing.URL, nil).Purge(context.Background(), []string{"x"})
	if !errors.Is(err, ErrPurgeRejected) {
		t.Fatalf("purge at an edge whose ACL refuses us: got %v, want ErrPurgeRejected", err)
	}
	api2 := newTestAPI(t, st, func(o *APIOptions) {
		o.Purger = NewXkeyPurger(refusing.URL, nil)
		o.PurgeRetryFor = 300 * time.Millisecond
	})
	want(t, call(t, api2, "PUT", "/api/products/r2", `{"v":1}`, auth...), 201)
	if err := api2.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := testutilValue(api2.edge.results.WithLabelValues("failed")); got != 1 {
		t.Errorf("failed purges: got %v, want 1", got)
	}
	want(t, call(t, api2, "GET", "/api/products/r2", ""), 200)
}
