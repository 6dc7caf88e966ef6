package bundler

import (
	"path"
	"strings"
	"testing"
	"testing/quick"
)

func TestLocalURL(t *testing.T) {
	for _, tc := range []struct {
		in, path, suffix string
		local            bool
	}{
		{"img/a.png", "img/a.png", "", true},
		{" ./a%20b.png?x=1#f ", "./a b.png", "?x=1#f", true},
		{"/css/site.css#x", "/css/site.css", "#x", true},
		{"https://cdn.example.com/a.png", "", "", false},
		{"//cdn.example.com/a.png", "", "", false},
		{"data:image/png;base64,AAAA", "", "", false},
		{"mailto:a@example.com", "", "", false},
		{"#anchor", "", "", false},
		{"?only=query", "", "", false},
		{"", "", "", false},
		{"{{ .Image }}", "", "", false},
		{"img/${name}.png", "", "", false},
		{"C:/x.png", "", "", false}, // a scheme, as a browser reads it
		{"a%zz.png", "a%zz.png", "", true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			p, ok := localURL(tc.in)
			if ok != tc.local || p.path != tc.path || p.suffix != tc.suffix {
				t.Errorf("got %q %q %v, want %q %q %v", p.path, p.suffix, ok, tc.path, tc.suffix, tc.local)
			}
		})
	}
}

// TestResolveRelProperty: whatever the URL, a resolved path is clean,
// relative and inside the site, or refused.
func TestResolveRelProperty(t *testing.T) {
	prop := func(from, p string) bool {
		rel, ok := resolveRel(path.Clean("x/"+from), p)
		if !ok {
			return true
		}
		return rel == path.Clean(rel) && !path.IsAbs(rel) && rel != ".." && !strings.HasPrefix(rel, "../")
	}
	if err := quick.Check(prop, &quick.Config{MaxCount: 2000}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		from, p, want string
		ok            bool
	}{
		{"blog/post.html", "../img/a.png", "img/a.png", true},
		{"blog/post.html", "./a.png", "blog/a.png", true},
		{"blog/post.html", "/img/a.png", "img/a.png", true},
		{"index.html", "../a.png", "", false},
		{"index.html", "/../a.png", "", false},
		{"blog/post.html", "../../a.png", "", false},
	} {
		if got, ok := resolveRel(tc.from, tc.p); got != tc.want || ok != tc.ok {
			t.Errorf("resolveRel(%q, %q): got %q %v, want %q %v", tc.from, tc.p, got, ok, tc.want, tc.ok)
		}
	}
}

// TestReplaceBaseProperty: rewriting keeps the directory part, the query
// and the fragment byte for byte and changes only the last segment.
func TestReplaceBaseProperty(t *testing.T) {
	prop := func(dir, q string) bool {
		dir = strings.Map(func(r rune) rune {
			if r == '?' || r == '#' {
				return -1
			}
			return r
		}, dir)
		raw := dir + "/a.png?" + q
		parts, ok := localURL(raw)
		if !ok {
			return true
		}
		got := replaceBase(parts, "a.0123abcd.png")
		rawPath := strings.TrimSuffix(parts.raw, parts.suffix)
		wantDir := rawPath[:strings.LastIndexByte(rawPath, '/')+1]
		return strings.HasPrefix(got, wantDir) && strings.HasSuffix(got, parts.suffix) &&
			strings.Contains(got, "a.0123abcd.png")
	}
	if err := quick.Check(prop, &quick.Config{MaxCount: 2000}); err != nil {
		t.Fatal(err)
	}
}

// TestContentType: a fixed table, the same on every machine, with
// charset=utf-8 on text.
func TestContentType(t *testing.T) {
	for name, want := range map[string]string{
		"index.html":         "text/html; charset=utf-8",
		"css/site.CSS":       "text/css; charset=utf-8",
		"js/app.1234abcd.js": "text/javascript; charset=utf-8",
		"app.js.map":         "application/json; charset=utf-8",
		"site.webmanifest":   "application/manifest+json; charset=utf-8",
		"img/icons.svg":      "image/svg+xml; charset=utf-8",
		"img/a.png":          "image/png",
		"fonts/x.woff2":      "font/woff2",
		"favicon.ico":        "image/x-icon",
		"media/v.mp4":        "video/mp4",
		"LICENSE":            "application/octet-stream",
		"data.unknownext":    "application/octet-stream",
	} {
		if got := contentType(name); got != want {
			t.Errorf("contentType(%q): got %q, want %q", name, got, want)
		}
	}
}
