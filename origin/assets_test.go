package origin

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/assetctl/assetctl/manifest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

const testCDN = "https://cdn.example.com/site/"

func testManifest(t testing.TB) *manifest.Manifest {
	t.Helper()
	m, err := manifest.Load("testdata")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func testAssets(t testing.TB) *Assets {
	t.Helper()
	a, err := NewAssets(testManifest(t), testCDN)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestURL(t *testing.T) {
	a := testAssets(t)
	for _, tt := range []struct{ name, want string }{
		{"css/site.css", testCDN + "css/site.77777777.css"},
		{"/css/site.css", testCDN + "css/site.77777777.css"},
		{"favicon.ico", testCDN + "favicon.34567890.ico"}, // the alias names the hashed file
		{"js/app.ts", testCDN + "js/app.11111111.js"},
		{"js/app.11111111.js", testCDN + "js/app.11111111.js"}, // an output path
		{"img/hero image.jpg", testCDN + "img/hero%20image.23456789.jpg"},
	} {
		got, err := a.URL(tt.name)
		if err != nil || got != tt.want {
			t.Errorf("URL(%q): got %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
	_, err := a.URL("css/sites.css")
	var ue *UnknownAssetError
	if !errors.Is(err, ErrUnknownAsset) || !errors.As(err, &ue) || ue.BuildID != "b1b1b1b1b1b1b1b1" {
		t.Errorf("URL of an unknown name: got %v, want an *UnknownAssetError of build b1b1b1b1b1b1b1b1", err)
	}
	in, err := a.Integrity("css/site.css")
	if err != nil || !strings.HasPrefix(in, "sha384-") {
		t.Errorf("Integrity: got %q, %v", in, err)
	}
}

func TestCDNURL(t *testing.T) {
	m := testManifest(t)
	for _, tt := range []struct{ base, want string }{
		{"https://cdn.example.com/site", "https://cdn.example.com/site/css/site.77777777.css"},
		{"", "/css/site.77777777.css"},
		{"/assets", "/assets/css/site.77777777.css"},
	} {
		a, err := NewAssets(m, tt.base)
		if err != nil {
			t.Fatalf("NewAssets(%q): %v", tt.base, err)
		}
		if got, _ := a.URL("css/site.css"); got != tt.want {
			t.Errorf("base %q: got %q, want %q", tt.base, got, tt.want)
		}
	}
	for _, bad := range []string{"cdn.example.com/site", "ftp://x/", "https://cdn/?a=b", "https:///x"} {
		if _, err := NewAssets(m, bad); err == nil {
			t.Errorf("NewAssets accepted CDN URL %q", bad)
		}
	}
}

var tagRE = regexp.MustCompile(`<(link|script) ([^>]*)>`)
var attrRE = regexp.MustCompile(`(\w+)="([^"]*)"`)

type tag struct {
	el    string
	attrs map[string]string
}

func parseTags(t *testing.T, h string) []tag {
	t.Helper()
	var out []tag
	for _, m := range tagRE.FindAllStringSubmatch(h, -1) {
		tg := tag{el: m[1], attrs: map[string]string{}}
		for _, a := range attrRE.FindAllStringSubmatch(m[2], -1) {
			tg.attrs[a[1]] = a[2]
		}
		out = append(out, tg)
	}
	return out
}

func TestEntryTagsGolden(t *testing.T) {
	a := testAssets(t)
	for _, tt := range []struct {
		file, name string
		o          TagOptions
	}{
		{"app", "js/app.ts", TagOptions{}},
		{"app-nonce", "js/app.ts", TagOptions{Nonce: "r4nd0m+/=="}},
		{"app-prefetch", "js/app.ts", TagOptions{Nonce: "n1", PrefetchDynamic: true}},
		{"admin", "js/admin.ts", TagOptions{}},
		{"cyclic", "js/cyclic.ts", TagOptions{PrefetchDynamic: true}},
		{"stylesheet", "css/site.css", TagOptions{Nonce: "n1"}},
		{"classic", "js/legacy.js", TagOptions{}},
	} {
		t.Run(tt.file, func(t *testing.T) {
			h, err := a.EntryTags(tt.name, tt.o)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.ReplaceAll(string(h), "><", ">\n<") + "\n"
			p := filepath.Join("testdata", "golden", tt.file+".html")
			if *update {
				if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(p)
			if err != nil {
				t.Fatalf("%v (run go test ./origin -run TestEntryTagsGolden -update)", err)
			}
			if got != string(want) {
				t.Errorf("EntryTags(%q, %+v):\ngot\n%s\nwant\n%s", tt.name, tt.o, got, want)
			}
		})
	}
}

// TestEntryTagsRules checks the rules behind the golden files on every
// entry: Vite's order, each file once, the entry never preloaded, the
// nonce and crossorigin on every tag, integrity on every static tag.
func TestEntryTagsRules(t *testing.T) {
	a := testAssets(t)
	for _, name := range []string{"js/app.ts", "js/admin.ts", "js/cyclic.ts", "css/site.css"} {
		for _, prefetch := range []bool{false, true} {
			h, err := a.EntryTags(name, TagOptions{Nonce: "abc", PrefetchDynamic: prefetch})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			tags := parseTags(t, string(h))
			entryURL, _ := a.URL(name)
			stage := 0 // 0 stylesheets, 1 script, 2 modulepreload, 3 prefetch
			seen := map[string]bool{}
			for _, tg := range tags {
				u := tg.attrs["href"] + tg.attrs["src"]
				if seen[u] {
					t.Errorf("%s: %s appears twice", name, u)
				}
				seen[u] = true
				if tg.attrs["nonce"] != "abc" || tg.attrs["crossorigin"] != "anonymous" {
					t.Errorf("%s: tag %v lacks the nonce or crossorigin", name, tg)
				}
				st := map[string]int{"stylesheet": 0, "modulepreload": 2, "prefetch": 3}[tg.attrs["rel"]]
				if tg.el == "script" {
					st = 1
				}
				if st < stage {
					t.Errorf("%s: %s %s comes after a later kind of tag", name, tg.el, u)
				}
				stage = st
				if st < 3 && !strings.HasPrefix(tg.attrs["integrity"], "sha384-") {
					t.Errorf("%s: %s has no integrity", name, u)
				}
				if st == 2 && u == entryURL {
					t.Errorf("%s: the entry itself is modulepreloaded", name)
				}
			}
			if !seen[entryURL] {
				t.Errorf("%s: its own file %s is not among the tags", name, entryURL)
			}
		}
	}
}

func TestEntryTagsErrors(t *testing.T) {
	a := testAssets(t)
	if _, err := a.EntryTags("js/broken.ts", TagOptions{}); err == nil || !strings.Contains(err.Error(), "js/gone.00000000.js") {
		t.Errorf("entry with a missing import: got %v, want an error naming the import", err)
	}
	if _, err := a.EntryTags("img/logo.png", TagOptions{}); !errors.Is(err, ErrNotEntry) {
		t.Errorf("entry of an image: got %v, want ErrNotEntry", err)
	}
	if _, err := a.EntryTags("js/nope.ts", TagOptions{}); !errors.Is(err, ErrUnknownAsset) {
		t.Errorf("entry of an unknown name: got %v, want ErrUnknownAsset", err)
	}
	if _, err := a.EntryTags("js/app.ts", TagOptions{Nonce: `x" onload="alert(1)`}); !errors.Is(err, ErrBadNonce) {
		t.Errorf("a nonce with quotes: got %v, want ErrBadNonce", err)
	}
}

func TestLinkHeader(t *testing.T) {
	a := testAssets(t)
	got := a.LinkHeader([]string{"js/app.ts", "css/site.css", "js/nope.ts"})
	want := []string{
		"<" + testCDN + "js/app.dddddddd.css>; rel=preload; as=style",
		"<" + testCDN + "js/shared.eeeeeeee.css>; rel=preload; as=style",
		"<" + testCDN + "css/site.77777777.css>; rel=preload; as=style",
		"<" + testCDN + "js/app.11111111.js>; rel=modulepreload",
		"<" + testCDN + "js/util.bbbbbbbb.js>; rel=modulepreload",
		"<" + testCDN + "js/shared.aaaaaaaa.js>; rel=modulepreload",
	}
	items := strings.Split(got, ", ")
	if len(got) > MaxLinkHeader {
		t.Fatalf("LinkHeader is %d bytes, over the %d cap", len(got), MaxLinkHeader)
	}
	// Integrity values make each item ~170 bytes: the stylesheets and the
	// entry script fit, the lowest-priority chunk preloads may not.
	if len(items) < 4 || len(items) > len(want) {
		t.Fatalf("got %d items, want 4 to %d: %s", len(items), len(want), got)
	}
	for i, w := range want[:len(items)] {
		if !strings.HasPrefix(items[i], w+"; crossorigin=anonymous; integrity=\"sha384-") {
			t.Errorf("item %d: got %s, want %s...", i, items[i], w)
		}
	}
	if a.LinkHeader([]string{"js/app.ts", "css/site.css", "js/nope.ts"}) != got {
		t.Errorf("a second call gave another value")
	}
	if h := a.LinkHeader(nil); h != "" {
		t.Errorf("no entries: got %q, want empty", h)
	}
}

// TestLinkHeaderCap builds a manifest whose page needs far more than the
// cap: the value stays under it, drops whole items from the end, and
// keeps the stylesheets (highest priority) first.
func TestLinkHeaderCap(t *testing.T) {
	m := &manifest.Manifest{Version: 1, BuildID: "cap", Files: map[string]manifest.File{}}
	hash := strings.Repeat("0", 64)
	var imports, css []string
	for i := range 30 {
		c := fmt.Sprintf("js/chunk-%02d.0123abcd.js", i)
		imports = append(imports, c)
		m.Files[c] = manifest.File{Path: c, Hash: hash, Integrity: "sha384-" + strings.Repeat("A", 64), ContentType: "text/javascript", Kind: manifest.KindChunk}
		s := fmt.Sprintf("css/part-%02d.0123abcd.css", i)
		css = append(css, s)
		m.Files[s] = manifest.File{Path: s, Hash: hash, Integrity: "sha384-" + strings.Repeat("B", 64), ContentType: "text/css", Kind: manifest.KindAsset}
	}
	m.Files["js/big.ts"] = manifest.File{Path: "js/big.0123abcd.js", Hash: hash, ContentType: "text/javascript", Kind: manifest.KindEntry, Imports: imports, CSS: css}
	a, err := NewAssets(m, testCDN)
	if err != nil {
		t.Fatal(err)
	}
	h := a.LinkHeader([]string{"js/big.ts"})
	if len(h) > MaxLinkHeader || len(h) < MaxLinkHeader/2 {
		t.Fatalf("LinkHeader is %d bytes, want close to but not over %d", len(h), MaxLinkHeader)
	}
	items := strings.Split(h, ", ")
	for i, it := range items {
		want := fmt.Sprintf("<%scss/part-%02d.0123abcd.css>; rel=preload; as=style; crossorigin=anonymous; integrity=\"sha384-%s\"", testCDN, i, strings.Repeat("B", 64))
		if it != want {
			t.Errorf("item %d: got %q, want %q (whole, in priority order)", i, it, want)
		}
	}
}

// TestEarlyHints runs a real HTTP/2 server (TLS) and an HTTP/1.1 one and
// watches for the 103 with the client's 1xx trace.
func TestEarlyHints(t *testing.T) {
	link := testAssets(t).LinkHeader([]string{"js/app.ts"})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		EarlyHints(w, r, link)
		w.Write([]byte("page"))
	})
	h2 := httptest.NewUnstartedServer(h)
	h2.EnableHTTP2 = true
	h2.StartTLS()
	defer h2.Close()
	h1 := httptest.NewServer(h)
	defer h1.Close()
	for _, tt := range []struct {
		srv   *httptest.Server
		mode  string
		hints bool
	}{
		{h2, "navigate", true},
		{h2, "", true},
		{h2, "cors", false},
		{h1, "navigate", false},
	} {
		var got []string
		trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, hdr textproto.MIMEHeader) error {
			got = append(got, fmt.Sprint(code, " ", hdr.Get("Link")))
			return nil
		}}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), "GET", tt.srv.URL, nil)
		if tt.mode != "" {
			req.Header.Set("Sec-Fetch-Mode", tt.mode)
		}
		resp, err := tt.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := []string(nil)
		if tt.hints {
			want = []string{"103 " + link}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) || resp.StatusCode != 200 {
			t.Errorf("HTTP/%d Sec-Fetch-Mode %q: got 1xx %q and status %d, want %q and 200", resp.ProtoMajor, tt.mode, got, resp.StatusCode, want)
		}
	}
}
