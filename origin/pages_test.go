package origin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/assetctl/assetctl/manifest"
	"github.com/assetctl/assetctl/shardedapi"
)

// fakeDocs is a fake document store: an in-memory map plus injected
// errors. The real store behind these handlers is exercised end to end by
// internal/cli's serve tests; this one pins the handler's rules.
type fakeDocs struct {
	docs    map[string]shardedapi.Document
	getErr  map[string]error
	list    []shardedapi.Document
	partial bool
	listErr error
}

func (f *fakeDocs) Get(_ context.Context, col, id string) (shardedapi.Document, error) {
	if err := f.getErr[id]; err != nil {
		return shardedapi.Document{}, err
	}
	d, ok := f.docs[col+"/"+id]
	if !ok {
		return shardedapi.Document{}, fmt.Errorf("get document %s/%s: %w", col, id, shardedapi.ErrNotFound)
	}
	return d, nil
}

func (f *fakeDocs) List(_ context.Context, col string, limit int, _ string, _ shardedapi.GatherOptions) (shardedapi.DocumentPage, error) {
	if f.listErr != nil {
		return shardedapi.DocumentPage{}, f.listErr
	}
	n := min(limit, len(f.list))
	return shardedapi.DocumentPage{Documents: f.list[:n], Partial: f.partial}, nil
}

func doc(col, id, body string) shardedapi.Document {
	return shardedapi.Document{Collection: col, ID: id, Body: json.RawMessage(body), Rev: 7, CreatedAt: time.Unix(1700000000, 0)}
}

func newTestPages(t *testing.T, docs *fakeDocs) (*Pages, *Assets) {
	t.Helper()
	m, err := manifest.Load("testdata")
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAssets(m, "https://cdn.example.test/site/")
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := LoadTemplates("testdata/pages", a)
	if err != nil {
		t.Fatal(err)
	}
	shared := CachePolicy{SMaxAge: 5 * time.Minute, StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour}
	p, err := NewPages(tpl, docs, PagesOptions{Routes: []PageRoute{
		{Pattern: "/products/{id}", Template: "product.html", Document: "products", Title: "Product", Cache: shared},
		{Pattern: "/me/{uid}", Template: "product.html", Document: "users", Param: "uid"},
		{Pattern: "/{$}", Template: "list.html", List: "products", Limit: 2, Cache: CachePolicy{SMaxAge: time.Minute}},
		{Pattern: "/broken/{id}", Template: "broken.html", Document: "products", Cache: shared},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return p, a
}

func serve(p *Pages, a *Assets, method, path string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, nil)
	r = r.WithContext(WithAssets(r.Context(), a))
	w := httptest.NewRecorder()
	p.ServeHTTP(w, r)
	return w
}

func TestPages(t *testing.T) {
	docs := &fakeDocs{
		docs: map[string]shardedapi.Document{
			"products/p1": doc("products", "p1", `{"name":"Oak <Lamp>","price_cents":123456789}`),
			"products/p2": doc("products", "p2", `{"name":"Mug"}`),
			"users/u1":    doc("users", "u1", `{"name":"Ada"}`),
		},
		getErr: map[string]error{
			"down": &shardedapi.ShardError{Shard: "s3", Op: "get document", Unavailable: true, Err: errors.New("connection refused")},
			"bad!": fmt.Errorf("get: %w", shardedapi.ErrInvalidKey),
			"boom": errors.New("syntax error in SQL"),
		},
	}
	docs.list = []shardedapi.Document{docs.docs["products/p2"], docs.docs["products/p1"], docs.docs["users/u1"]}
	p, a := newTestPages(t, docs)
	const sharedCC = "public, max-age=0, s-maxage=300, stale-while-revalidate=60, stale-if-error=3600"

	tests := []struct {
		name, method, path string
		status             int
		body               []string // substrings the body must have
		cacheControl       string
		tags               []string // cache tags, in order; nil: no tag header
		retryAfter         string
	}{
		{"product", "GET", "/products/p1", 200, []string{"<title>Oak &lt;Lamp&gt;</title>", "<h1>Oak &lt;Lamp&gt;</h1>", "123456789 rev 7", `src="https://cdn.example.test/site/js/app.11111111.js"`}, sharedCC, []string{DocumentTag("products", "p1")}, ""},
		{"missing document", "GET", "/products/nope", 404, []string{"<h1>Not found</h1>"}, sharedCC, []string{DocumentTag("products", "nope")}, ""},
		{"invalid id", "GET", "/products/bad!", 404, []string{"<h1>Not found</h1>"}, sharedCC, []string{DocumentTag("products", "bad!")}, ""},
		{"shard down", "GET", "/products/down", 503, []string{"<h1>Unavailable</h1>"}, "no-store", nil, "5"},
		{"other error", "GET", "/products/boom", 500, []string{"internal error"}, "", nil, ""},
		{"private page", "GET", "/me/u1", 200, []string{"<h1>Ada</h1>"}, "private, no-store", nil, ""},
		{"list", "GET", "/", 200, []string{"<li>p2:Mug</li><li>p1:Oak &lt;Lamp&gt;</li></ul>"}, "public, max-age=0, s-maxage=60", []string{CollectionTag("products"), DocumentTag("products", "p2"), DocumentTag("products", "p1")}, ""},
		{"no route", "GET", "/nowhere", 404, []string{"<h1>Not found</h1>"}, "public, max-age=0, s-maxage=60", nil, ""},
		{"template error", "GET", "/broken/p1", 500, []string{"internal error"}, "no-store", nil, ""},
		{"head", "HEAD", "/products/p1", 200, nil, sharedCC, []string{DocumentTag("products", "p1")}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(p, a, tt.method, tt.path)
			body := w.Body.String()
			if w.Code != tt.status {
				t.Fatalf("got status %d, want %d\n%s", w.Code, tt.status, body)
			}
			for _, s := range tt.body {
				if !strings.Contains(body, s) {
					t.Errorf("body lacks %q:\n%s", s, body)
				}
			}
			h := w.Header()
			if tt.cacheControl != "" && h.Get("Cache-Control") != tt.cacheControl {
				t.Errorf("Cache-Control: got %q, want %q", h.Get("Cache-Control"), tt.cacheControl)
			}
			if got, want := h.Get("Xkey"), strings.Join(tt.tags, " "); got != want {
				t.Errorf("xkey: got %q, want %q", got, want)
			}
			if h.Get("Retry-After") != tt.retryAfter {
				t.Errorf("Retry-After: got %q, want %q", h.Get("Retry-After"), tt.retryAfter)
			}
			if tt.status == 200 {
				if !strings.Contains(h.Get("Link"), "js/app.11111111.js") {
					t.Errorf("Link: got %q, want the entry preloaded", h.Get("Link"))
				}
				if h.Get("Content-Type") != "text/html; charset=utf-8" || h.Get("Content-Length") == "" {
					t.Errorf("got Content-Type %q Content-Length %q, want html and a length", h.Get("Content-Type"), h.Get("Content-Length"))
				}
				if tt.method == "HEAD" && body != "" {
					t.Errorf("HEAD: got a body of %d bytes, want none", len(body))
				}
			}
			if w.Code == 500 && strings.Contains(body, "<html>") {
				t.Errorf("a failed render sent part of the page:\n%s", body)
			}
		})
	}
}

func TestPagesPartialListIsNotShared(t *testing.T) {
	docs := &fakeDocs{list: []shardedapi.Document{doc("products", "p1", `{"name":"Mug"}`)}, partial: true}
	p, a := newTestPages(t, docs)
	w := serve(p, a, "GET", "/")
	if w.Code != 200 || w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("X-Partial-Result") != "true" || !strings.Contains(w.Body.String(), "<p>partial</p>") {
		t.Errorf("got %d Cache-Control %q X-Partial-Result %q, want 200, no-store, true and the partial note", w.Code, w.Header().Get("Cache-Control"), w.Header().Get("X-Partial-Result"))
	}
	if w.Header().Get("Xkey") != "" {
		t.Errorf("xkey: got %q, want none on an uncacheable page", w.Header().Get("Xkey"))
	}
}

func TestPagesNeedsAssetsInContext(t *testing.T) {
	p, _ := newTestPages(t, &fakeDocs{})
	w := httptest.NewRecorder()
	p.ServeHTTP(w, httptest.NewRequest("GET", "/products/p1", nil))
	if w.Code != http.StatusInternalServerError {
		t.Errorf("got %d, want 500 without Live.Middleware", w.Code)
	}
}

func TestNewPagesErrors(t *testing.T) {
	m, err := manifest.Load("testdata")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := NewAssets(m, "https://cdn.example.test/")
	tpl, err := LoadTemplates("testdata/pages", a)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		route PageRoute
		want  string
	}{
		{"missing template", PageRoute{Pattern: "/x", Template: "nope.html"}, `"nope.html" is not in the templates directory`},
		{"bad pattern", PageRoute{Pattern: "/x/{id", Template: "list.html"}, `page route "/x/{id"`},
		{"document and list", PageRoute{Pattern: "/x/{id}", Template: "list.html", Document: "a", List: "a"}, "pick one"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewPages(tpl, &fakeDocs{}, PagesOptions{Routes: []PageRoute{tt.route}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	_, err = NewPages(tpl, &fakeDocs{}, PagesOptions{Routes: []PageRoute{{Pattern: "/x", Template: "nope.html"}}})
	if !errors.Is(err, ErrMissingTemplate) {
		t.Errorf("got %v, want ErrMissingTemplate", err)
	}
}

// A page is rendered once per (template, build, document revision); each
// request gets its own nonce written in, and a new revision renders anew.
func TestPagesRenderCache(t *testing.T) {
	docs := &fakeDocs{docs: map[string]shardedapi.Document{"products/p1": doc("products", "p1", `{"name":"Lamp"}`)}}
	p, a := newTestPages(t, docs)
	get := func(nonce string) string {
		r := httptest.NewRequest("GET", "/products/p1", nil)
		ctx := WithAssets(r.Context(), a)
		ctx = context.WithValue(ctx, reqStateKey{}, &reqState{nonce: nonce})
		w := httptest.NewRecorder()
		p.ServeHTTP(w, r.WithContext(ctx))
		if w.Code != 200 {
			t.Fatalf("got %d, want 200", w.Code)
		}
		return w.Body.String()
	}
	one, two := get("Nonce1"), get("Nonce2")
	if !strings.Contains(one, `nonce="Nonce1"`) || !strings.Contains(two, `nonce="Nonce2"`) || strings.Contains(two, "Nonce1") || strings.Contains(one, p.placeholder) {
		t.Fatalf("nonces: got\n%s\n%s\nwant each request's own nonce", one, two)
	}
	if strings.ReplaceAll(two, "Nonce2", "Nonce1") != one {
		t.Errorf("two requests for one revision differ beyond the nonce:\n%s\n%s", one, two)
	}
	d := doc("products", "p1", `{"name":"Lantern"}`)
	d.Rev = 8
	docs.docs["products/p1"] = d
	if three := get("Nonce3"); !strings.Contains(three, "<h1>Lantern</h1>") {
		t.Errorf("after a write (rev 8): got\n%s\nwant the new name", three)
	}
}
