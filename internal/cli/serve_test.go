package cli

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/assetctl/assetctl/internal/testsvc"
)

// copyExample copies the example site's config and templates into a new
// directory a test may edit.
func copyExample(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "templates"), 0o755); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(exampleSite, "templates", "*.html"))
	files = append(files, filepath.Join(exampleSite, "assetctl.yaml"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(exampleSite, f)
		if err := os.WriteFile(filepath.Join(dir, rel), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func editFile(t *testing.T, path, from, to string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), from) {
		t.Fatalf("%s lacks %q", path, from)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), from, to, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A bad config key and an unknown asset in a template each fail start-up
// with the file and line, before anything listens.
func TestServeStartupErrorsNameFileAndLine(t *testing.T) {
	data := newServeData(t)
	dist := buildExample(t)
	t.Run("config key", func(t *testing.T) {
		site := copyExample(t)
		editFile(t, filepath.Join(site, "assetctl.yaml"), "  poll-interval: 5s\n", "  poll-intervall: 5s\n")
		code, _, stderr := run(t, append([]string{"serve", site, "--manifest", dist}, data.args()...)...)
		if code == 0 || !regexp.MustCompile(`assetctl\.yaml: \[\d+:3\] unknown field "poll-intervall"`).MatchString(stderr) {
			t.Errorf("got exit %d, stderr %q; want non-zero naming assetctl.yaml:LINE and the key", code, stderr)
		}
	})
	t.Run("route collection", func(t *testing.T) {
		site := copyExample(t)
		editFile(t, filepath.Join(site, "assetctl.yaml"), "      document: users\n", "      document: members\n")
		code, _, stderr := run(t, append([]string{"serve", site, "--manifest", dist}, data.args()...)...)
		if code == 0 || !regexp.MustCompile(`assetctl\.yaml:\d+: serve\.routes\[2\]\.document: collection "members" is not declared`).MatchString(stderr) {
			t.Errorf("got exit %d, stderr %q; want non-zero naming assetctl.yaml:LINE and the collection", code, stderr)
		}
	})
	t.Run("unknown asset", func(t *testing.T) {
		site := copyExample(t)
		editFile(t, filepath.Join(site, "templates", "product.html"), `{{asset "img/hero.jpg"}}`, `{{asset "img/heroo.jpg"}}`)
		code, _, stderr := run(t, append([]string{"serve", site, "--manifest", dist, "--cdn-url", "http://cdn.test/"}, data.args()...)...)
		if code == 0 || !strings.Contains(stderr, "product.html:") || !strings.Contains(stderr, "img/heroo.jpg") {
			t.Errorf("got exit %d, stderr %q; want non-zero naming product.html:LINE and img/heroo.jpg", code, stderr)
		}
		if testing.Verbose() {
			t.Log(stderr)
		}
	})
}

// The example's routes against a real dataset: a product page with CDN
// asset URLs, its cache headers and tag; the newest-products list; the
// 404 page for a missing product; a private user page.
func TestServePages(t *testing.T) {
	data := newServeData(t)
	dist := buildExample(t)
	_, prefix := testsvc.Redis(t)
	s := startServe(t, exampleSite, append(data.args(), "--manifest", dist, "--cdn-url", "https://cdn.example.test/site/",
		"--redis", testsvc.SharedRedisAddr, "--cache-prefix", prefix)...)
	putDoc(t, s.URL, "products", "p1", `{"name":"Oak Lamp","description":"A lamp.","price":"€12.00","category":"home","stock":3,"tags":["new"]}`)
	putDoc(t, s.URL, "users", "u1", `{"name":"Ada Lovelace","email":"ada@example.com","bio":"Hi.","city":"London"}`)

	code, h, body := get(t, s.URL+"/products/p1")
	if code != http.StatusOK || !strings.Contains(body, "<h1>Oak Lamp</h1>") || !strings.Contains(body, "<title>Oak Lamp · assetctl shop</title>") {
		t.Fatalf("GET /products/p1: got %d\n%s\nwant 200 with the product", code, body)
	}
	if !regexp.MustCompile(`<script type="module" src="https://cdn\.example\.test/site/js/app\.[0-9a-f]{8}\.js" integrity="sha384-[^"]+" crossorigin="anonymous" nonce="[^"]+"`).MatchString(body) &&
		!regexp.MustCompile(`src="https://cdn\.example\.test/site/js/app\.[0-9a-f]{8}\.js"`).MatchString(body) {
		t.Errorf("product page: no entry script on the CDN:\n%s", body)
	}
	if !regexp.MustCompile(`href="https://cdn\.example\.test/site/css/site\.[0-9a-f]{8}\.css"`).MatchString(body) {
		t.Errorf("product page: no hashed stylesheet on the CDN:\n%s", body)
	}
	if got, want := h.Get("Cache-Control"), "public, max-age=0, s-maxage=300, stale-while-revalidate=60, stale-if-error=86400"; got != want {
		t.Errorf("product Cache-Control: got %q, want %q", got, want)
	}
	if h.Get("Xkey") == "" || h.Get("Surrogate-Key") == "" || h.Get("X-Build-Id") == "" || !strings.Contains(h.Get("Link"), "rel=modulepreload") && !strings.Contains(h.Get("Link"), "rel=preload") {
		t.Errorf("product headers: got xkey %q surrogate-key %q X-Build-ID %q Link %q, want all set", h.Get("Xkey"), h.Get("Surrogate-Key"), h.Get("X-Build-Id"), h.Get("Link"))
	}

	code, h, body = get(t, s.URL+"/")
	if code != http.StatusOK || !strings.Contains(body, `<a href="/products/p1">Oak Lamp</a>`) {
		t.Errorf("GET /: got %d\n%s\nwant the newest products listing p1", code, body)
	}
	if !strings.Contains(h.Get("Cache-Control"), "s-maxage=60") || h.Get("Xkey") == "" {
		t.Errorf("GET /: got Cache-Control %q xkey %q, want s-maxage=60 and tags", h.Get("Cache-Control"), h.Get("Xkey"))
	}

	code, _, body = get(t, s.URL+"/products/nope")
	if code != http.StatusNotFound || !strings.Contains(body, "<h1>Not found</h1>") {
		t.Errorf("GET /products/nope: got %d\n%s\nwant 404 with the 404 template", code, body)
	}
	code, _, body = get(t, s.URL+"/no/such/page")
	if code != http.StatusNotFound || !strings.Contains(body, "<h1>Not found</h1>") {
		t.Errorf("GET /no/such/page: got %d, want 404 with the 404 template", code)
	}

	code, h, body = get(t, s.URL+"/users/u1")
	if code != http.StatusOK || !strings.Contains(body, "Ada Lovelace") || h.Get("Cache-Control") != "private, no-store" || h.Get("Xkey") != "" {
		t.Errorf("GET /users/u1: got %d Cache-Control %q xkey %q, want 200, private, no-store and no tags", code, h.Get("Cache-Control"), h.Get("Xkey"))
	}
	if c := s.Stop(); c != 0 {
		t.Errorf("serve exit code: got %d, want 0\n%s", c, s.stderr)
	}
}
