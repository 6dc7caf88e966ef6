package origin

import (
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"slices"
	"testing"
)

// TestEarlyHintsThroughServerNoDuplicateLink runs the way Pages does it
// (Link set for every protocol, then EarlyHints) through Server's chain
// on HTTP/2: one 103 carrying the Link once, a final 200 carrying it
// once, and the request counted as 200, not 103.
func TestEarlyHintsThroughServerNoDuplicateLink(t *testing.T) {
	link := testAssets(t).LinkHeader([]string{"js/app.ts"})
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", link)
		EarlyHints(w, r, link)
		_, _ = w.Write([]byte("page"))
	})
	srv, err := NewServer(page, ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.EnableHTTP2 = true
	ts.StartTLS()
	defer ts.Close()

	var hints [][]string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		if code == http.StatusEarlyHints {
			hints = append(hints, h.Values("Link"))
		}
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), http.MethodGet, ts.URL+"/page", nil)
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK {
		t.Fatalf("got %s %s, want HTTP/2 200", resp.Proto, resp.Status)
	}
	if len(hints) != 1 || len(hints[0]) != 1 || hints[0][0] != link {
		t.Errorf("103 responses' Link values: %q, want one 103 with [%q]", hints, link)
	}
	if got := resp.Header.Values("Link"); len(got) != 1 || got[0] != link {
		t.Errorf("final Link values: %q, want [%q]", got, link)
	}
	if resp.Header.Get("Content-Security-Policy") == "" {
		t.Errorf("final response lacks the security headers the recorder adds")
	}
	var children map[metricKey]*routeMetrics
	if p := srv.children.Load(); p != nil {
		children = *p
	}
	if m, ok := children[metricKey{"other", http.MethodGet, http.StatusOK}]; !ok || m == nil {
		keys := slices.Collect(maps.Keys(children))
		t.Errorf("metrics recorded %v, want the request counted as (other, GET, 200)", keys)
	}
}
