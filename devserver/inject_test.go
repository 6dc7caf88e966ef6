package devserver

import (
	"bytes"
	"net/http"
	"net/http/httptest"
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

// FuzzServePath checks that no request path is answered with anything but
// a file of the build: the in-memory site below holds two files, and a
// secret sits next to the output directory.
func FuzzServePath(f *testing.F) {
	for _, p := range []string{"/", "/a.css", "/../secret.txt", "/%2e%2e/secret.txt", "//a.css", "/sub/", "/a.css/..", "/\x00", "/sub"} {
		f.Add(p)
	}
	s := &Server{siteDir: "site", hub: newHub()}
	s.site = &site{buildID: "b", manifest: manifestOf(map[string]string{"a.css": "1", "sub/index.html": "2"}), files: map[string]*servedFile{
		"a.css":          {data: []byte("A-CSS"), contentType: "text/css; charset=utf-8", hash: "1"},
		"sub/index.html": {data: []byte("SUB-INDEX"), contentType: "text/html; charset=utf-8", hash: "2", page: true},
	}}
	f.Fuzz(func(t *testing.T, p string) {
		req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Path = p
		if p == eventsPath {
			return // the live-reload event stream, not a file: nothing to check here
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		body := rec.Body.String()
		switch rec.Code {
		case http.StatusOK:
			if body != "A-CSS" && body != "SUB-INDEX" && !strings.Contains(body, "EventSource") {
				t.Fatalf("GET %q: got 200 with %q, want a file of the build", p, body)
			}
		case http.StatusNotFound, http.StatusMovedPermanently, http.StatusBadRequest:
		default:
			t.Fatalf("GET %q: got status %d", p, rec.Code)
		}
	})
}
