package origin

import (
	"bytes"
	"errors"
	"html/template"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/assetctl/assetctl/manifest"
)

type pageData struct {
	Title  string
	Images []string
}

func loadTestTemplates(t testing.TB) (*Templates, *Assets) {
	t.Helper()
	a := testAssets(t)
	tm, err := LoadTemplates(filepath.Join("testdata", "templates"), a)
	if err != nil {
		t.Fatal(err)
	}
	return tm, a
}

func TestRenderLayoutsAndNonce(t *testing.T) {
	tm, a := loadTestTemplates(t)
	var buf bytes.Buffer
	err := tm.Render(&buf, "index.html", pageData{Title: "Hi <there>", Images: []string{"css/print.css"}}, RenderContext{Assets: a, Nonce: "Zm9vYmFy"})
	if err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	app, _ := a.EntryTags("js/app.ts", TagOptions{Nonce: "Zm9vYmFy"})
	for _, want := range []string{
		"<title>Home</title>",
		`<link rel="icon" href="` + testCDN + `favicon.34567890.ico">`,
		string(app),
		`<link rel="stylesheet" href="` + testCDN + `css/site.77777777.css" integrity="sha384-`,
		"<h1>Hi &lt;there&gt;</h1>",
		`<img src="` + testCDN + `img/logo.12345678.png" alt="logo">`,
		`<img src="` + testCDN + `css/print.88888888.css" alt="">`, // a computed name
		`<script nonce="Zm9vYmFy">window.buildID = "b1b1b1b1b1b1b1b1";</script>`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("index.html lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, tm.token) {
		t.Errorf("the nonce placeholder leaked into the page")
	}
	if strings.Contains(out, "product") {
		t.Errorf("index.html rendered product.html's blocks:\n%s", out)
	}

	buf.Reset()
	if err := tm.Render(&buf, "product.html", pageData{Title: "Lamp"}, RenderContext{Assets: a}); err != nil {
		t.Fatal(err)
	}
	out = buf.String()
	admin, _ := a.EntryTags("js/admin.ts", TagOptions{PrefetchDynamic: true})
	for _, want := range []string{"<title>Lamp</title>", `<h1 class="product">Lamp</h1>`, string(admin),
		`<img src="` + testCDN + `img/hero%20image.23456789.jpg" alt="">`, `<script>window.buildID`} {
		if !strings.Contains(out, want) {
			t.Errorf("product.html lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "nonce") {
		t.Errorf("without a nonce the page still has nonce attributes:\n%s", out)
	}
}

func TestRenderErrors(t *testing.T) {
	tm, a := loadTestTemplates(t)
	var buf bytes.Buffer
	err := tm.Render(&buf, "index.html", pageData{Images: []string{"img/missing.png"}}, RenderContext{Assets: a})
	if !errors.Is(err, ErrUnknownAsset) || buf.Len() != 0 {
		t.Errorf("a computed unknown name: got %v and %d bytes written, want ErrUnknownAsset and nothing", err, buf.Len())
	}
	if err := tm.Render(&buf, "nope.html", nil, RenderContext{Assets: a}); !errors.Is(err, ErrNoTemplate) {
		t.Errorf("unknown template: got %v, want ErrNoTemplate", err)
	}
	if err := tm.Render(&buf, "index.html", nil, RenderContext{Assets: a, Nonce: `"><script>`}); !errors.Is(err, ErrBadNonce) {
		t.Errorf("bad nonce: got %v, want ErrBadNonce", err)
	}
	if err := tm.Render(&buf, "index.html", nil, RenderContext{}); err == nil {
		t.Errorf("Render without assets succeeded")
	}
}

func TestTemplatesEntries(t *testing.T) {
	tm, _ := loadTestTemplates(t)
	if got, want := tm.Entries("product.html"), []string{"js/app.ts", "js/admin.ts"}; !slices.Equal(got, want) {
		t.Errorf("Entries(product.html): got %v, want %v", got, want)
	}
	if got, want := tm.Entries("index.html"), []string{"js/app.ts"}; !slices.Equal(got, want) {
		t.Errorf("Entries(index.html): got %v, want %v", got, want)
	}
	if !tm.Has("layouts/base.html") || !tm.Has("index.html") || tm.Has("base.html") {
		t.Errorf("Has: wrong answers for %v", tm.Names())
	}
}

func writeTemplates(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestLoadTemplatesReportsEveryUnknownName: start-up fails naming each
// file:line, the name, and the closest one the manifest has.
func TestLoadTemplatesReportsEveryUnknownName(t *testing.T) {
	dir := writeTemplates(t, map[string]string{
		"page.html": `<!doctype html>
<title>x</title>
<link rel="stylesheet" href="{{asset "css/sitee.css"}}">
{{template "partials/x.html" .}}
{{entry "js/ap.ts"}}
{{if .}}
  <img src="{{"img/logo.jpg" | asset}}" integrity="{{integrity "img/logo.jpg"}}">
{{end}}
{{entry "img/logo.png"}}
{{entry "js/app.ts" "eager"}}
{{asset "totally/unrelated/thing.woff2"}}
{{asset .Computed}}
`,
		"partials/x.html": "\n{{with .}}{{asset \"favicon.icon\"}}{{end}}\n",
	})
	_, err := LoadTemplates(dir, testAssets(t))
	var ce *CheckError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a *CheckError", err)
	}
	want := []string{
		filepath.Join(dir, "page.html") + `:3: asset "css/sitee.css": asset "css/sitee.css" is not in the manifest of build b1b1b1b1b1b1b1b1: check the name against the site's source tree (did you mean "css/site.css"?)`,
		filepath.Join(dir, "page.html") + `:5: entry "js/ap.ts"`,
		filepath.Join(dir, "page.html") + `:7: asset "img/logo.jpg"`,
		filepath.Join(dir, "page.html") + `:7: integrity "img/logo.jpg"`,
		filepath.Join(dir, "page.html") + `:9: entry "img/logo.png"`,
		filepath.Join(dir, "page.html") + `:10: entry "js/app.ts": unknown option "eager"`,
		filepath.Join(dir, "page.html") + `:11: asset "totally/unrelated/thing.woff2"`,
		filepath.Join(dir, "partials", "x.html") + `:2: asset "favicon.icon"`,
	}
	if len(ce.Errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(ce.Errs), len(want), err)
	}
	for i, w := range want {
		if got := ce.Errs[i].Error(); !strings.HasPrefix(got, w) {
			t.Errorf("error %d:\ngot  %s\nwant %s...", i, got, w)
		}
	}
	sugg := map[string]string{"js/ap.ts": "js/app.ts", "img/logo.jpg": "img/logo.png", "favicon.icon": "favicon.ico", "totally/unrelated/thing.woff2": ""}
	for _, e := range ce.Errs {
		if w, ok := sugg[e.Name]; ok && e.Suggestion != w {
			t.Errorf("%s: suggestion %q, want %q", e.Name, e.Suggestion, w)
		}
	}
	if !errors.Is(err, ErrUnknownAsset) || !errors.Is(err, ErrNotEntry) {
		t.Errorf("the CheckError does not unwrap to its causes")
	}
}

func TestLoadTemplatesSyntaxErrors(t *testing.T) {
	dir := writeTemplates(t, map[string]string{
		"a.html": "{{if}}",
		"b.html": "ok\n{{end}}",
		"c.html": "{{assett \"x\"}}",
	})
	_, err := LoadTemplates(dir, testAssets(t))
	if err == nil {
		t.Fatal("LoadTemplates accepted broken templates")
	}
	for _, want := range []string{"a.html:1", "b.html:2", `c.html:1: function "assett" not defined`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := LoadTemplates(t.TempDir(), testAssets(t)); err == nil {
		t.Errorf("an empty directory loaded")
	}
}

// TestCheckNewManifest: a build that lacks a name a template uses is
// refused before it is swapped in.
func TestCheckNewManifest(t *testing.T) {
	tm, a := loadTestTemplates(t)
	if err := tm.Check(a); err != nil {
		t.Fatalf("Check of the manifest the templates loaded with: %v", err)
	}
	m := testManifest(t)
	delete(m.Files, "img/logo.png")
	m.Files["img/logo.webp"] = manifest.File{Path: "img/logo.abcdef12.webp", Hash: strings.Repeat("1", 64), ContentType: "image/webp"}
	m.BuildID = "c2c2c2c2c2c2c2c2"
	next, err := NewAssets(m, testCDN)
	if err != nil {
		t.Fatal(err)
	}
	err = tm.Check(next)
	var ce *CheckError
	if !errors.As(err, &ce) || len(ce.Errs) != 1 {
		t.Fatalf("got %v, want one error", err)
	}
	e := ce.Errs[0]
	if e.File != filepath.Join("testdata", "templates", "index.html") || e.Line != 5 || e.Name != "img/logo.png" || e.Suggestion != "img/logo.webp" || ce.BuildID != "c2c2c2c2c2c2c2c2" {
		t.Errorf("got %+v, want index.html:5 img/logo.png suggesting img/logo.webp", e)
	}
}

// TestRenderTwoSnapshots renders alternately with two builds: each page
// carries only its own build's URLs.
func TestRenderTwoSnapshots(t *testing.T) {
	tm, a := loadTestTemplates(t)
	m := testManifest(t)
	f := m.Files["css/site.css"]
	f.Path = "css/site.99990000.css"
	m.Files["css/site.css"] = f
	m.BuildID = "b2b2b2b2b2b2b2b2"
	b, err := NewAssets(m, testCDN)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		snap := []*Assets{a, b}[i%2]
		var buf bytes.Buffer
		if err := tm.Render(&buf, "index.html", pageData{}, RenderContext{Assets: snap}); err != nil {
			t.Fatal(err)
		}
		css, _ := snap.URL("css/site.css")
		if !strings.Contains(buf.String(), css) || !strings.Contains(buf.String(), snap.BuildID()) {
			t.Errorf("render %d with build %s lacks %s", i, snap.BuildID(), css)
		}
	}
}

// TestLoadTemplatesEscapingErrors: what html/template would only report
// on the first request (a missing template, an ambiguous context) stops
// start-up, naming the file and line.
func TestLoadTemplatesEscapingErrors(t *testing.T) {
	dir := writeTemplates(t, map[string]string{
		"a.html":            "<p>\n{{template \"partials/nope.html\" .}}</p>",
		"b.html":            "<a href=\"{{if .}}x\">{{else}}y{{end}}\">z</a>",
		"partials/ok.html":  "<p>{{.}}</p>",
		"layouts/base.html": "{{block \"content\" .}}{{end}}",
	})
	_, err := LoadTemplates(dir, testAssets(t))
	if err == nil {
		t.Fatal("LoadTemplates accepted templates html/template cannot escape")
	}
	for _, want := range []string{`a.html:2`, `no such template "partials/nope.html"`, `b.html:1`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestLoadTemplatesWithFuncs(t *testing.T) {
	dir := writeTemplates(t, map[string]string{"p.html": `<p>{{upper .}}</p><img src="{{asset "img/logo.png"}}">`})
	tm, err := LoadTemplatesWith(dir, testAssets(t), TemplateOptions{Funcs: template.FuncMap{"upper": strings.ToUpper}})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tm.Render(&buf, "p.html", "lamp", RenderContext{Assets: testAssets(t)}); err != nil {
		t.Fatal(err)
	}
	if want := `<p>LAMP</p><img src="` + testCDN + `img/logo.12345678.png">`; buf.String() != want {
		t.Errorf("got %s, want %s", buf.String(), want)
	}
	if _, err := LoadTemplatesWith(dir, testAssets(t), TemplateOptions{Funcs: template.FuncMap{"asset": strings.ToUpper}}); err == nil {
		t.Errorf("an application function named asset was accepted")
	}
}

func TestSuggestionsAreSourceNames(t *testing.T) {
	a := testAssets(t)
	if s := closest("js/shared.js", a.sources); s != "" {
		t.Errorf("suggested %q for js/shared.js; a hashed chunk name is never a good suggestion", s)
	}
	if s := closest("css/sit.css", a.sources); s != "css/site.css" {
		t.Errorf("got %q, want css/site.css", s)
	}
}
