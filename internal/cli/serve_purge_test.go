package cli

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/assetctl/assetctl/internal/testsvc"
)

// pagesVCL is an edge in front of the origin with the xkey vmod: a PURGE
// carrying xkey-purge drops every object tagged with those keys.
const pagesVCL = `vcl 4.1;
import xkey;
backend origin { .host = "127.0.0.1"; .port = "%PORT%"; }
acl purgers { "127.0.0.1"; }
sub vcl_recv {
  if (req.method == "PURGE") {
    if (client.ip !~ purgers) { return (synth(405, "Not allowed")); }
    if (req.http.xkey-purge) {
      set req.http.n-gone = xkey.purge(req.http.xkey-purge);
      return (synth(200, "Invalidated " + req.http.n-gone + " objects"));
    }
    return (purge);
  }
}
sub vcl_deliver {
  if (obj.hits > 0) { set resp.http.X-Cache = "HIT"; } else { set resp.http.X-Cache = "MISS"; }
}
`

// After a PUT returns, the document's page through the Varnish edge shows
// the new version (its tag was purged), while an unrelated cached page
// stays cached.
func TestServePurgeThroughVarnish(t *testing.T) {
	data := newServeData(t)
	dist := buildExample(t)
	_, prefix := testsvc.Redis(t)
	addr := testsvc.Addr(testsvc.FreePort(t))
	_, port, _ := strings.Cut(addr, ":")
	edge := testsvc.StartVarnishVCL(t, strings.ReplaceAll(pagesVCL, "%PORT%", port))
	s := startServe(t, exampleSite, append(data.args(), "--addr", addr, "--manifest", dist, "--cdn-url", "https://cdn.example.test/site/",
		"--redis", testsvc.SharedRedisAddr, "--cache-prefix", prefix, "--purge", edge.URL+"/")...)
	putDoc(t, s.URL, "products", "p1", `{"name":"Oak Lamp","price":"€12.00"}`)
	putDoc(t, s.URL, "products", "p2", `{"name":"Steel Mug","price":"€5.00"}`)

	view := func(id string) (body, xcache string) {
		t.Helper()
		code, h, body := get(t, edge.URL+"/products/"+id)
		if code != http.StatusOK {
			t.Fatalf("GET /products/%s through the edge: got %d", id, code)
		}
		return body, h.Get("X-Cache")
	}
	for _, id := range []string{"p1", "p2"} {
		view(id)
		if _, x := view(id); x != "HIT" {
			t.Fatalf("second view of %s: X-Cache %q, want HIT", id, x)
		}
	}
	objects := edge.Counter(t, "MAIN.n_object")
	putDoc(t, s.URL, "products", "p1", `{"name":"Oak Lamp","price":"€9.99"}`) // purges after it commits, before it returns
	// The edge's expiry thread frees the purged object a moment later.
	var after uint64
	for range 100 {
		if after = edge.Counter(t, "MAIN.n_object"); after == objects-1 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if after != objects-1 {
		t.Errorf("cached objects (varnishstat MAIN.n_object) after the PUT: got %d, want %d (p1's page gone, p2's kept)", after, objects-1)
	}
	if body, x := view("p1"); !strings.Contains(body, "€9.99") || x != "MISS" {
		t.Errorf("p1 after the PUT: X-Cache %q, price €9.99 shown: %v; want a MISS with the new price", x, strings.Contains(body, "€9.99"))
	}
	if body, x := view("p2"); x != "HIT" || !strings.Contains(body, "€5.00") {
		t.Errorf("p2 (unrelated) after the PUT: X-Cache %q, want still a HIT", x)
	}
}
