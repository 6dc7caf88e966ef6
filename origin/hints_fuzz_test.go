package origin

import (
	"strings"
	"testing"

	"github.com/assetctl/assetctl/manifest"
)

// FuzzLinkHeader builds a page whose files have arbitrary names and checks
// the Link header writer: never over the cap, every item whole and
// well-formed, and the capped value a prefix of the uncapped one (so only
// the lowest-priority items are dropped).
func FuzzLinkHeader(f *testing.F) {
	f.Add("css/a.css\njs/b.js", "https://cdn.example.com/site/", "sha384-abc")
	f.Add(strings.Repeat("css/very-long-name-of-a-stylesheet.0123456789abcdef.css\n", 20), "/", "")
	f.Add("a,b;c<d>e f.css\n\"q\".js", "https://cdn/", `sha384-"\`)
	f.Fuzz(func(t *testing.T, names, base, integrity string) {
		m := &manifest.Manifest{Version: 1, BuildID: "fuzz", Files: map[string]manifest.File{}}
		var imports, css []string
		for i, n := range strings.Split(names, "\n") {
			if n == "" || i > 64 {
				continue
			}
			if i%2 == 0 {
				n += ".css"
				css = append(css, n)
				m.Files[n] = manifest.File{Path: n, Integrity: integrity, ContentType: "text/css"}
			} else {
				n += ".js"
				imports = append(imports, n)
				m.Files[n] = manifest.File{Path: n, Integrity: integrity, ContentType: "text/javascript", Kind: manifest.KindChunk}
			}
		}
		m.Files["entry.ts"] = manifest.File{Path: "entry.0.js", ContentType: "text/javascript", Kind: manifest.KindEntry, Imports: imports, CSS: css}
		a, err := NewAssets(m, base)
		if err != nil {
			return
		}
		got := a.LinkHeader([]string{"entry.ts", "css/a.css"})
		full := a.linkHeader([]string{"entry.ts", "css/a.css"}, 1<<30)
		if len(got) > MaxLinkHeader {
			t.Fatalf("Link header of %d bytes", len(got))
		}
		if !strings.HasPrefix(full, got) || (got != full && len(got) > 0 && !strings.HasPrefix(full[len(got):], ", <")) {
			t.Fatalf("the capped header is not a whole-item prefix of the full one:\n%s\n%s", got, full)
		}
		if got == "" {
			return
		}
		for _, item := range strings.Split(got, ", <") {
			item = strings.TrimPrefix(item, "<")
			u, params, ok := strings.Cut(item, ">; rel=")
			if !ok || strings.ContainsAny(u, "<>,; \"") {
				t.Fatalf("malformed item %q in %q", item, got)
			}
			if !strings.HasPrefix(params, "preload; as=style; crossorigin=anonymous") && !strings.HasPrefix(params, "modulepreload; crossorigin=anonymous") {
				t.Fatalf("item %q: unexpected parameters", item)
			}
		}
	})
}
