package bundler

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/assetctl/assetctl/internal/testsvc"
	"github.com/assetctl/assetctl/manifest"
)

// TestPrebuiltVite imports a real `vite build` output: nothing renamed or
// rewritten, Vite's hashed files immutable (from .vite/manifest.json) with
// their chunk graph, pages and public files mutable, and the imported
// site works in Chromium, the dynamic import included.
func TestPrebuiltVite(t *testing.T) {
	dist := testsvc.ViteMultiPage(t)
	out := filepath.Join(t.TempDir(), "out")
	m, err := Import(context.Background(), PrebuiltOptions{Dir: dist, OutDir: out})
	if err != nil {
		t.Fatal(err)
	}
	checkOutputNames(t, out, m, false)
	var entries, chunks int
	for key, f := range m.Files {
		src, err := os.ReadFile(filepath.Join(dist, filepath.FromSlash(key)))
		if err != nil {
			t.Fatalf("%s: not in the vite output: %v", key, err)
		}
		got, _ := os.ReadFile(filepath.Join(out, filepath.FromSlash(f.Path)))
		if f.Path != key || string(got) != string(src) {
			t.Errorf("%s: renamed to %s or rewritten", key, f.Path)
		}
		hashed := strings.HasPrefix(key, "assets/")
		if f.Immutable != hashed {
			t.Errorf("%s: got immutable %v, want %v", key, f.Immutable, hashed)
		}
		switch f.Kind {
		case manifest.KindEntry:
			entries++
		case manifest.KindChunk:
			chunks++
		}
	}
	if entries != 2 || chunks != 2 {
		t.Errorf("got %d entries and %d chunks, want 2 and 2 (main, about; shared, lazy)", entries, chunks)
	}
	if f := m.Files["favicon.svg"]; f.Immutable || f.Kind != manifest.KindStatic {
		t.Errorf("favicon.svg: got %+v, want mutable static", f)
	}
	if _, ok := m.Files[".vite/manifest.json"]; ok {
		t.Error(".vite/manifest.json published, want it left out")
	}

	srv := httptest.NewServer(http.FileServer(http.Dir(out)))
	defer srv.Close()
	ctx := testsvc.Chromium(t)
	if err := chromedpNavigate(ctx, srv.URL+"/"); err != nil {
		t.Fatal(err)
	}
	if err := chromedpClick(ctx, "#load"); err != nil {
		t.Fatal(err)
	}
	if err := testsvc.PollJS(ctx, `document.getElementById("out").textContent === "shared lazy loaded"`); err != nil {
		t.Fatal(err)
	}
	if err := testsvc.PollJS(ctx, `getComputedStyle(document.body).color === "rgb(1, 2, 3)"`); err != nil {
		t.Fatal(err)
	}
	if err := chromedpNavigate(ctx, srv.URL+"/about/"); err != nil {
		t.Fatal(err)
	}
	if err := testsvc.PollJS(ctx, `document.getElementById("out").textContent === "shared about"`); err != nil {
		t.Fatal(err)
	}
}

// TestPrebuiltMissingFile: a page naming a file the directory lacks is
// reported at page:line and nothing is written.
func TestPrebuiltMissingFile(t *testing.T) {
	dir := writeSite(t, map[string]string{
		"index.html":              "<!doctype html>\n<link rel=stylesheet href=\"/assets/app-AAAAAAAA.css\">\n<script type=module src=\"/assets/gone-BBBBBBBB.js\"></script>\n<a href=\"/route\">r</a>",
		"assets/app-AAAAAAAA.css": "body{}",
	})
	out := filepath.Join(t.TempDir(), "out")
	_, err := Import(context.Background(), PrebuiltOptions{Dir: dir, OutDir: out})
	var be *BuildError
	if !errors.As(err, &be) || len(be.Messages) != 1 || be.Messages[0].File != "index.html" || be.Messages[0].Line != 3 {
		t.Fatalf("got %v, want one message at index.html:3", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("output written: %v", err)
	}
}

// TestPrebuiltBadInput: each bad input is one clear error and no output.
func TestPrebuiltBadInput(t *testing.T) {
	built := filepath.Join(t.TempDir(), "built")
	mustBuild(t, Options{SiteDir: writeSite(t, map[string]string{"index.html": "x"}), OutDir: built})
	for _, tc := range []struct {
		name string
		dir  string
		opts PrebuiltOptions
		want string
	}{
		{"already an assetctl output", built, PrebuiltOptions{}, "already an assetctl build output"},
		{"no pages", writeSite(t, map[string]string{"app.js": "x"}), PrebuiltOptions{}, "has no pages"},
		{"unknown preset", writeSite(t, map[string]string{"index.html": "x"}), PrebuiltOptions{Preset: "gulp"}, `unknown preset "gulp"`},
		{"foreign manifest.json", writeSite(t, map[string]string{"index.html": "x", "manifest.json": `{"name":"pwa"}`}), PrebuiltOptions{}, "assetctl writes its own manifest"},
		{"bad glob", writeSite(t, map[string]string{"index.html": "x"}), PrebuiltOptions{Immutable: []string{"a/[b"}}, "not a valid glob"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			tc.opts.Dir, tc.opts.OutDir = tc.dir, out
			_, err := Import(context.Background(), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("output written: %v", err)
			}
		})
	}
}

// TestPrebuiltPresets: without a tool manifest, each preset's name
// patterns (and --immutable) decide what is immutable.
func TestPrebuiltPresets(t *testing.T) {
	for _, tc := range []struct {
		preset Preset
		extra  []string
		files  map[string]bool // path -> want immutable
	}{
		{PresetVite, nil, map[string]bool{"assets/index-BXq3m2Zb.js": true, "assets/logo.svg": false, "app-BXq3m2Zb.js": false}},
		{PresetAngular, nil, map[string]bool{"main-ABCD1234.js": true, "styles.0123456789abcdef.css": true, "favicon.ico": false}},
		{PresetNext, nil, map[string]bool{"_next/static/chunks/app.js": true, "_next/data/x.json": false, "404.html": false}},
		{PresetWebpack, nil, map[string]bool{"js/main.3f9a1c2e.js": true, "js/main.js": false, "img/a.0123456789abcdef0123.png": true}},
		{PresetAuto, nil, map[string]bool{ // no marker: webpack's and Hugo's hex patterns
			"css/style.0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.css": true,
			"js/app.0123abcd.js": true, "index.xml": false, "img/logo.png": false}},
		{PresetHugo, []string{"fonts/*.woff2"}, map[string]bool{
			"css/style.0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.css": true,
			"css/style.css": false, "fonts/a.woff2": true}},
	} {
		t.Run(cmpOr(string(tc.preset), "auto"), func(t *testing.T) {
			site := map[string]string{"index.html": "<p>x</p>"}
			for p := range tc.files {
				site[p] = p
			}
			out := filepath.Join(t.TempDir(), "out")
			m, err := Import(context.Background(), PrebuiltOptions{Dir: writeSite(t, site), OutDir: out, Preset: tc.preset, Immutable: tc.extra})
			if err != nil {
				t.Fatal(err)
			}
			for p, want := range tc.files {
				if got := m.Files[p].Immutable; got != want {
					t.Errorf("%s: got immutable %v, want %v", p, got, want)
				}
			}
			if m.Files["index.html"].Immutable {
				t.Error("index.html: immutable, want a mutable page")
			}
		})
	}
}

// TestPrebuiltHugo imports a real `hugo` build with preset auto: the
// fingerprinted stylesheet is immutable and its manifest integrity is the
// one Hugo wrote into the page; pages and static files are mutable.
func TestPrebuiltHugo(t *testing.T) {
	hugo := testsvc.Binary(t, "hugo", "apt-get install -y hugo")
	site := writeSite(t, map[string]string{
		"hugo.toml": "baseURL = \"/\"\ntitle = \"t\"\ndisableKinds = [\"taxonomy\", \"term\", \"RSS\", \"sitemap\"]\n",
		"layouts/_default/baseof.html": `<!doctype html>
<html><head><title>{{ .Title }}</title>
{{ $css := resources.Get "css/main.css" | minify | fingerprint }}
<link rel="stylesheet" href="{{ $css.RelPermalink }}" integrity="{{ $css.Data.Integrity }}">
<link rel="icon" href="/favicon.ico">
</head><body>{{ block "main" . }}{{ end }}</body></html>
`,
		"layouts/_default/single.html": `{{ define "main" }}<h1>{{ .Title }}</h1>{{ .Content }}{{ end }}`,
		"layouts/index.html":           `{{ define "main" }}<h1>home</h1><a href="/about/">about</a>{{ end }}`,
		"assets/css/main.css":          "body { color: rgb(4, 5, 6) }\n",
		"content/about.md":             "---\ntitle: about\n---\nhello\n",
		"static/favicon.ico":           "ico",
	})
	public := filepath.Join(t.TempDir(), "public")
	cmd := exec.Command(hugo, "--quiet", "-d", public)
	cmd.Dir = site
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hugo: %v\n%s", err, out)
	}
	out := filepath.Join(t.TempDir(), "out")
	m, err := Import(context.Background(), PrebuiltOptions{Dir: public, OutDir: out})
	if err != nil {
		t.Fatal(err)
	}
	checkOutputNames(t, out, m, false)
	page, err := os.ReadFile(filepath.Join(public, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	var css int
	for key, f := range m.Files {
		switch {
		case strings.HasSuffix(key, ".css"):
			css++
			if !f.Immutable || !strings.Contains(string(page), `integrity="`+f.Integrity+`"`) {
				t.Errorf("%s: got immutable %v, integrity %s; want immutable with the integrity Hugo wrote", key, f.Immutable, f.Integrity)
			}
		case f.Immutable:
			t.Errorf("%s: immutable, want mutable", key)
		}
	}
	if css != 1 || m.Files["about/index.html"].Kind != manifest.KindPage {
		t.Errorf("got %d stylesheets and about/index.html %+v, want 1 and a page", css, m.Files["about/index.html"])
	}
}
