package origin

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzAPIRequest sends arbitrary methods, paths, queries, headers and
// bodies through the Server and the API over the real store: no input may
// panic or answer 5xx, except 503 (a shard unavailable), and every error is
// JSON.
func FuzzAPIRequest(f *testing.F) {
	st := newStack(f, stackConfig{})
	a := newTestAPI(f, st, nil)
	mux := http.NewServeMux()
	mux.Handle("/api/", a)
	s := newTestServer(f, mux, ServerOptions{MaxBodyBytes: 8192})
	h := s.Handler()

	seed := func(method, path, query, headers, body string) { f.Add(method, path, query, headers, []byte(body)) }
	seed("GET", "/api/products/p1", "", "", "")
	seed("PUT", "/api/products/p1", "", "Authorization: Bearer "+testToken+"\nContent-Type: application/json", `{"name":"x","sku":"S1"}`)
	seed("PATCH", "/api/products/p1", "", "Authorization: Bearer "+testToken+"\nContent-Type: application/merge-patch+json\nIf-Match: \"1\"", `{"name":null}`)
	seed("DELETE", "/api/products/p1", "", "Authorization: Bearer "+testToken+"\nIf-Match: *", "")
	seed("GET", "/api/products", "limit=2&cursor=abc", "If-None-Match: W/\"3\", *", "")
	seed("OPTIONS", "/api/users/u", "", "Origin: https://x\nAccess-Control-Request-Method: PUT", "")
	seed("PUT", "/api/users/u1", "", "Authorization: Bearer "+testToken+"\nIf-None-Match: \"2\",\"x", `{"email":7}`)
	seed("BREW", "/api/../../etc", "%zz", "If-Match: \"99999999999999999999\"", "{\"a\":")
	seed("PUT", "/api/products/p2", "", "Authorization: Bearer "+testToken, strings.Repeat("[", 5000))

	f.Fuzz(func(t *testing.T, method, path, query, headers string, body []byte) {
		if method == "" || strings.ContainsAny(method, " \t\r\n") {
			method = "GET"
		}
		req := &http.Request{
			Method:     method,
			URL:        &url.URL{Path: path, RawQuery: query},
			Proto:      "HTTP/1.1",
			ProtoMajor: 1,
			ProtoMinor: 1,
			Header:     http.Header{},
			Host:       "origin.test",
			RemoteAddr: "127.0.0.1:1234",
			RequestURI: path,
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		for line := range strings.SplitSeq(headers, "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && k != "" {
				req.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
			}
		}
		req = req.WithContext(t.Context())
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %q ?%q headers %q body %q: got %d %s", method, path, query, headers, body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 && strings.HasPrefix(path, "/api/") && !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			t.Fatalf("%s %q: error %d is not JSON: %q", method, path, rec.Code, rec.Body)
		}
	})
}
