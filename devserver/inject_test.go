package devserver

import (
	"bytes"
	"strings"
	"testing"
)

func TestInjectClient(t *testing.T) {
	const tag = `<script src="/__assetctl/client.js" data-build="b1" defer></script>`
	for _, tc := range []struct {
		name, page, want string
	}{
		{"head", "<html><head><title>x</title></head><body></body></html>",
			"<html><head><title>x</title>" + tag + "</head><body></body></html>"},
		{"upper case", "<HTML><HEAD></HEAD></HTML>", "<HTML><HEAD>" + tag + "</HEAD></HTML>"},
		{"no head", "<p>hi</p></body>", "<p>hi</p>" + tag + "</body>"},
		{"fragment", "<p>hi</p>", "<p>hi</p>" + tag},
		{"empty", "", tag},
		{"decoy in comment", "<!-- </head> --><head></head>", "<!-- </head> --><head>" + tag + "</head>"},
		{"decoy in script", "<head><script>let s = '</he' + 'ad>'; document.write('</head>')</script></head>",
			"<head><script>let s = '</he' + 'ad>'; document.write('</head>')</script>" + tag + "</head>"},
		{"decoy in attribute", `<head><meta content="</head>"></head>`, `<head><meta content="</head>">` + tag + "</head>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(injectClient([]byte(tc.page), "b1")); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	if got := string(injectClient([]byte("<head></head>"), `"><x`)); !strings.Contains(got, `data-build="&#34;&gt;&lt;x"`) {
		t.Fatalf("build ID is escaped: got %q", got)
	}
}

func FuzzInjectClient(f *testing.F) {
	for _, s := range []string{"<html><head></head><body></body></html>", "<p>x", "<!--", "<script></head>", "", "</body></body>"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, page []byte) {
		out := injectClient(page, "id")
		tag := []byte(`<script src="/__assetctl/client.js" data-build="id" defer></script>`)
		i := bytes.Index(out, tag)
		if i < 0 {
			t.Fatalf("tag missing from %q", out)
		}
		// Every original byte survives, in order, around the tag.
		if rest := append(append([]byte{}, out[:i]...), out[i+len(tag):]...); !bytes.Equal(rest, page) {
			t.Fatalf("page bytes changed: got %q, want %q", rest, page)
		}
	})
}
