package origin

import (
	"bytes"
	"html/template"
	"strings"
	"testing"
	"text/template/parse"
)

// TestFoldMatchesHTMLTemplate renders constant calls in every kind of
// context through Templates (folded where exact) and through a plain
// html/template calling the same functions: the pages must agree (up to
// html/template writing '+' as &#43; in attributes), and the calls in
// plain attribute and text contexts must be folded away.
func TestFoldMatchesHTMLTemplate(t *testing.T) {
	src := `<!doctype html>
<link rel="stylesheet" href="{{asset "css/site.css"}}" integrity="{{integrity "css/site.css"}}">
<a href="/x?next={{asset "img/hero image.jpg"}}" data-b={{buildID}} title='{{asset "favicon.ico"}}'>{{"img/logo.png" | asset}}</a>
<img srcset="{{asset "img/logo.png"}} 2x">
<title>{{asset "css/site.css"}} {{buildID}}</title>
{{entry "js/app.ts" "prefetch"}}
<script nonce="{{nonce}}">var u = {{asset "js/app.ts"}}, s = "{{asset "js/app.ts"}}", b = "{{buildID}}";</script>
<style nonce="{{nonce}}">body { background: url("{{asset "img/logo.png"}}") }</style>
<p onclick="go({{asset "css/site.css"}})">{{range .}}{{asset .}}{{end}}</p>
`
	dir := writeTemplates(t, map[string]string{"p.html": src})
	a := testAssets(t)
	tm, err := LoadTemplates(dir, a)
	if err != nil {
		t.Fatal(err)
	}
	const nonce = "Tk9OQ0U="
	data := []string{"css/print.css"}
	var got bytes.Buffer
	if err := tm.Render(&got, "p.html", data, RenderContext{Assets: a, Nonce: nonce}); err != nil {
		t.Fatal(err)
	}
	ref := template.Must(template.New("p.html").Funcs(template.FuncMap{
		"asset": a.URL, "integrity": a.Integrity, "buildID": a.BuildID, "nonce": func() string { return nonce },
		"entry": func(name string, opts ...string) (template.HTML, error) {
			return a.EntryTags(name, TagOptions{Nonce: nonce, PrefetchDynamic: len(opts) > 0})
		},
	}).Parse(src))
	var want bytes.Buffer
	if err := ref.Execute(&want, data); err != nil {
		t.Fatal(err)
	}
	norm := func(s string) string { return strings.ReplaceAll(s, "&#43;", "+") }
	if norm(got.String()) != norm(want.String()) {
		t.Errorf("folded render differs from html/template's:\ngot\n%s\nwant\n%s", got.String(), want.String())
	}
	// What is left unfolded: a URL inside a query or a JavaScript string
	// (escaped in ways not reproduced here), the JavaScript value, srcset,
	// CSS and event-handler contexts, and the computed name.
	sp := tm.snapshotFor(a).pages["p.html"]
	left := 0
	var walk func(l *parse.ListNode)
	walk = func(l *parse.ListNode) {
		if l == nil {
			return
		}
		for _, n := range l.Nodes {
			switch n := n.(type) {
			case *parse.ActionNode:
				left++
			case *parse.RangeNode:
				walk(n.List)
			}
		}
	}
	walk(sp.t.Tree.Root)
	if left != 7 {
		t.Errorf("%d actions left unfolded, want 7", left)
	}
}
