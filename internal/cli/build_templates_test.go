package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/assetctl/assetctl/manifest"
	"github.com/assetctl/assetctl/origin"
)

// TestBuildTemplateRootsOriginStarts builds a site whose pages reference
// nothing and whose serve templates name an image, a stylesheet and a
// script entry, then loads the templates against the build's manifest as
// assetctl serve does at start-up: every name resolves, and a file nobody
// names is still left out.
func TestBuildTemplateRootsOriginStarts(t *testing.T) {
	site := t.TempDir()
	files := map[string]string{
		"assetctl.yaml":         "build:\n  exclude: [\"views/**\"]\nserve:\n  templates: views\n",
		"index.html":            "<!doctype html><title>home</title><p>no assets</p>\n",
		"img/hero.jpg":          "hero",
		"img/bg.png":            "bg",
		"unused.txt":            "nobody names me",
		"css/site.css":          "body { background: url(../img/bg.png) }\n",
		"js/admin.ts":           "export const n: number = 1; console.log(n);\n",
		"views/_layout.html":    `<link rel="stylesheet" href="{{asset "css/site.css"}}" integrity="{{integrity "css/site.css"}}">{{block "content" .}}{{end}}`,
		"views/admin.html":      `{{define "content"}}{{entry "js/admin.ts"}}<img src="{{asset "img/hero.jpg"}}">{{end}}`,
		"views/partials/x.html": `{{define "x"}}{{"/img/hero.jpg" | asset}}{{end}}`,
	}
	for name, body := range files {
		p := filepath.Join(site, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "dist")
	code, stdout, stderr := run(t, "build", site, "-o", out, "-v")
	if code != 0 {
		t.Fatalf("build: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "left out 1 unreferenced files") || !strings.Contains(stdout, "  unused.txt\n") {
		t.Errorf("build summary should leave out unused.txt only:\n%s", stdout)
	}
	m, err := manifest.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	a, err := origin.NewAssets(m, "https://cdn.example.com/")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := origin.LoadTemplates(filepath.Join(site, "views"), a); err != nil {
		t.Fatalf("the origin cannot start on the build: %v", err)
	}
	for _, name := range []string{"img/bg.png", "img/hero.jpg", "css/site.css", "js/admin.ts"} {
		if _, err := a.URL(name); err != nil {
			t.Errorf("%s not published: %v", name, err)
		}
	}
	if _, err := a.URL("unused.txt"); err == nil {
		t.Error("unused.txt was published though nothing names it")
	}
}
