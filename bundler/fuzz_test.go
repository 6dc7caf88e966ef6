package bundler

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// fuzzResolver rewrites every local reference to a fixed hashed-looking
// name, as the final pass would, with an integrity value and an injected
// stylesheet for entry points.
type fuzzResolver struct{ n int }

func (r *fuzzResolver) resolve(x ref) (resolved, error) {
	if _, ok := localURL(x.URL); !ok {
		return resolved{}, nil
	}
	r.n++
	out := resolved{URL: "dir/file.0123abcd.png?q=1&r=\"2\"#f", Integrity: "sha256-AAAA"}
	if x.Kind == refEntry {
		out.CSS = []cssRef{{URL: "app.0123abcd.css", Integrity: "sha256-BBBB"}}
	}
	return out, nil
}

// FuzzRewriteHTML checks the HTML rewriter on any input: it never panics,
// copies the input byte for byte when nothing is replaced, and rewriting
// is deterministic. Seeds live in testdata/fuzz/FuzzRewriteHTML.
func FuzzRewriteHTML(f *testing.F) {
	f.Add([]byte(`<img src="a.png" srcset="a.png 1x, b.png 2x"><style>a{b:url(c.png)}</style>`))
	f.Fuzz(func(t *testing.T, src []byte) {
		var same bytes.Buffer
		if err := rewriteHTML(&same, src, &recorder{}); err != nil {
			t.Fatalf("identity rewrite: %v", err)
		}
		if !bytes.Equal(same.Bytes(), src) {
			t.Fatalf("identity rewrite changed bytes:\n got %q\nwant %q", same.Bytes(), src)
		}
		var a, b bytes.Buffer
		if err := rewriteHTML(&a, src, &fuzzResolver{}); err != nil {
			t.Fatalf("rewrite: %v", err)
		}
		if err := rewriteHTML(&b, src, &fuzzResolver{}); err != nil {
			t.Fatalf("rewrite: %v", err)
		}
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Fatal("rewrite is not deterministic")
		}
		// The output must itself be readable.
		var again bytes.Buffer
		if err := rewriteHTML(&again, a.Bytes(), &recorder{}); err != nil || !bytes.Equal(again.Bytes(), a.Bytes()) {
			t.Fatalf("rewritten output does not round-trip: %v", err)
		}
	})
}

// FuzzRewriteCSS is FuzzRewriteHTML for stylesheets. Seeds live in
// testdata/fuzz/FuzzRewriteCSS.
func FuzzRewriteCSS(f *testing.F) {
	f.Add([]byte(`@import "a.css"; .x{background:url( 'b.png' ) image-set("c.png" 1x)}`))
	f.Fuzz(func(t *testing.T, src []byte) {
		var same bytes.Buffer
		rec := &recorder{}
		if err := rewriteCSS(&same, src, 1, rec); err != nil {
			t.Fatalf("identity rewrite: %v", err)
		}
		if !bytes.Equal(same.Bytes(), src) {
			t.Fatalf("identity rewrite changed bytes:\n got %q\nwant %q", same.Bytes(), src)
		}
		var a bytes.Buffer
		res := &fuzzResolver{}
		if err := rewriteCSS(&a, src, 1, res); err != nil {
			t.Fatalf("rewrite: %v", err)
		}
		// Every reference found is still a reference after rewriting.
		rec2 := &recorder{}
		var sink bytes.Buffer
		if err := rewriteCSS(&sink, a.Bytes(), 1, rec2); err != nil {
			t.Fatal(err)
		}
		if res.n > 0 && countLocal(rec2.refs) < res.n && !bytes.ContainsAny(src, "\\\x00") {
			t.Fatalf("rewrote %d references, found %d after:\n%s", res.n, countLocal(rec2.refs), a.Bytes())
		}
	})
}

func countLocal(refs []ref) int {
	n := 0
	for _, r := range refs {
		if _, ok := localURL(r.URL); ok && !strings.HasPrefix(r.URL, "#") {
			n++
		}
	}
	return n
}

// FuzzWebManifest checks the web manifest rewriter never panics and copies
// unchanged input exactly.
func FuzzWebManifest(f *testing.F) {
	f.Add([]byte(`{"icons":[{"src":"a.png"}],"shortcuts":[{"icons":[{"src":"b.png"}]}]}`))
	f.Fuzz(func(t *testing.T, src []byte) {
		var same bytes.Buffer
		if err := rewriteWebManifest(&same, src, &recorder{}); err != nil {
			return // invalid JSON is reported, not rewritten
		}
		if !bytes.Equal(same.Bytes(), src) {
			t.Fatalf("identity rewrite changed bytes:\n got %q\nwant %q", same.Bytes(), src)
		}
		var a bytes.Buffer
		if err := rewriteWebManifest(&a, src, &fuzzResolver{}); err != nil {
			t.Fatalf("rewrite of valid JSON: %v", err)
		}
	})
}

// FuzzStripJSONC checks the tsconfig comment stripper: valid JSON passes
// through unchanged in meaning, and any input gives output without a
// panic.
func FuzzStripJSONC(f *testing.F) {
	f.Add([]byte(`{ /* c */ "a": "//not a comment", "b": [1, 2,], // x
}`))
	f.Add([]byte(`{"compilerOptions":{"jsx":"react-jsx","jsxImportSource":"preact"}}`))
	f.Add([]byte(`"unterminated`))
	f.Fuzz(func(t *testing.T, src []byte) {
		out := stripJSONC(src)
		if json.Valid(src) && !bytes.ContainsAny(src, "/,") {
			var a, b any
			if json.Unmarshal(src, &a) != nil || json.Unmarshal(out, &b) != nil || !reflect.DeepEqual(a, b) {
				t.Fatalf("valid JSON changed meaning: %q -> %q", src, out)
			}
		}
	})
}

// FuzzRewriteNewURL checks the new URL(..., import.meta.url) rewrite: it
// never panics, leaves code without the pattern untouched, keeps every
// line where it was (source maps), and imports what it replaced.
func FuzzRewriteNewURL(f *testing.F) {
	f.Add("const a = new URL('./img.png', import.meta.url)\nconst b = new URL(`../x/${y}.png`, import.meta.url)\n")
	f.Add(`new URL("https://x", import.meta.url); new URL("/abs.svg",import.meta.url)`)
	f.Add("new URL(\n  './a.png',\n  import.meta.url\n)\nnext()")
	f.Fuzz(func(t *testing.T, src string) {
		out, changed := rewriteNewURL(src)
		if !changed {
			if out != src {
				t.Fatalf("unchanged code rewritten: %q -> %q", src, out)
			}
			return
		}
		// Code keeps its lines; the imports go on one line after it.
		if got, want := strings.Count(out, "\n"), strings.Count(src, "\n")+2; got != want {
			t.Fatalf("got %d line breaks, want %d: %q -> %q", got, want, src, out)
		}
		if !strings.Contains(out, "__assetctl_url_0") || !strings.Contains(out, "?url") {
			t.Fatalf("rewrite without its import: %q", out)
		}
	})
}
