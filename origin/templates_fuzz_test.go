package origin

import (
	"html/template"
	"strings"
	"testing"
)

// FuzzTemplateNames parses arbitrary template text and checks the
// resolution of constant names: the walk never panics, every name it
// finds is reported at a line that exists, Check agrees with a lookup,
// and a suggestion is always an existing, near name.
func FuzzTemplateNames(f *testing.F) {
	f.Add(`{{asset "css/site.css"}}`, "css/sit.css")
	f.Add("a\n{{if .}}{{entry \"js/ap.ts\" \"prefetch\"}}{{else}}{{\"img/logo.jpg\" | asset}}{{end}}\n{{integrity `x`}}", "favicon.icon")
	f.Add(`{{define "x"}}{{range .}}{{asset (printf "%s" .)}}{{template "y" .}}{{end}}{{end}}`, "")
	f.Add(`{{with $x := "a"}}{{asset $x}}{{end}}{{asset "a" "b"}}{{entry}}`, "js/app.ts")
	a, err := NewAssets(testManifest(f), testCDN)
	if err != nil {
		f.Fatal(err)
	}
	stub := (&Templates{token: "n0nce"}).funcsFor(&snapshot{assets: a})
	f.Fuzz(func(t *testing.T, src, name string) {
		set, err := template.New("f.html").Funcs(stub).Parse(src)
		if err != nil {
			return
		}
		lines := strings.Count(src, "\n") + 1
		tm := &Templates{dir: "d"}
		for _, tt := range set.Templates() {
			if tt.Tree == nil {
				continue
			}
			for _, r := range walkTree(tt.Tree).refs {
				if r.line < 1 || r.line > lines {
					t.Fatalf("ref %q at line %d of %d", r.name, r.line, lines)
				}
				tm.refs = append(tm.refs, r)
			}
		}
		err = tm.Check(a)
		var bad int
		for _, r := range tm.refs {
			var lerr error
			if r.fn == "entry" {
				_, lerr = a.entry(r.name)
			} else {
				_, lerr = a.lookup(r.name)
			}
			if lerr != nil || r.bad != "" {
				bad++
			}
		}
		ce, _ := err.(*CheckError)
		if (bad == 0) != (err == nil) || (ce != nil && len(ce.Errs) != bad) {
			t.Fatalf("Check reported %v for %d unresolvable names", err, bad)
		}
		if s := closest(name, a.sources); s != "" {
			if _, err := a.lookup(s); err != nil {
				t.Fatalf("suggested %q, which does not exist", s)
			}
			n := strings.TrimPrefix(name, "/")
			if d := editDistance(n, s, 1<<30); d > max(2, len(n)/3) || d != editDistance(s, n, 1<<30) {
				t.Fatalf("suggested %q for %q at distance %d", s, name, d)
			}
		}
	})
}
