package origin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestAPIDocumentRoundTrip: create, read, conditional reads and writes,
// merge patch and delete through HTTP, against the real store.
func TestAPIDocumentRoundTrip(t *testing.T) {
	st := newStack(t, stackConfig{})
	a := newTestAPI(t, st, nil)

	resp := call(t, a, "PUT", "/api/products/p1", `{"name":"Lamp","price":30,"sku":"L-1"}`, with(auth, []string{"Content-Type", "application/json"})...)
	created := want(t, resp, 201)
	etag1 := resp.Header.Get("ETag")
	if resp.Header.Get("Location") != "/api/products/p1" || !strings.HasPrefix(etag1, `"`) {
		t.Fatalf("201: got Location %q ETag %q", resp.Header.Get("Location"), etag1)
	}

	resp = call(t, a, "GET", "/api/products/p1", "")
	body := want(t, resp, 200)
	if body != created {
		t.Errorf("GET body %q differs from the PUT answer %q", body, created)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(body), &doc); err != nil || doc["name"] != "Lamp" {
		t.Fatalf("GET body %q: %v", body, err)
	}
	for k, v := range map[string]string{
		"ETag":          etag1,
		"Content-Type":  "application/json",
		"Cache-Control": "public, max-age=0, s-maxage=300, stale-while-revalidate=30, stale-if-error=600",
		"xkey":          DocumentTag("products", "p1"),
		"Surrogate-Key": DocumentTag("products", "p1"),
	} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("GET %s: got %q, want %q", k, got, v)
		}
	}

	resp = call(t, a, "GET", "/api/products/p1", "", "If-None-Match", `"999999", `+etag1)
	if b := want(t, resp, 304); b != "" || resp.Header.Get("ETag") != etag1 {
		t.Errorf("304: got body %q ETag %q", b, resp.Header.Get("ETag"))
	}
	want(t, call(t, a, "GET", "/api/products/p1", "", "If-None-Match", `"1"`), 200)

	// A second PUT replaces: 200 and a new ETag.
	resp = call(t, a, "PUT", "/api/products/p1", `{"name":"Lamp","price":35,"sku":"L-1"}`, with(auth, []string{"If-Match", etag1})...)
	want(t, resp, 200)
	etag2 := resp.Header.Get("ETag")
	if etag2 == etag1 {
		t.Fatalf("PUT kept ETag %s", etag1)
	}
	// A lost update: a writer still holding etag1 is refused, nothing written.
	want(t, call(t, a, "PUT", "/api/products/p1", `{"name":"stale"}`, with(auth, []string{"If-Match", etag1})...), 412)
	want(t, call(t, a, "PATCH", "/api/products/p1", `{"name":"stale"}`, with(auth, []string{"If-Match", etag1, "Content-Type", "application/merge-patch+json"})...), 412)
	want(t, call(t, a, "DELETE", "/api/products/p1", "", with(auth, []string{"If-Match", etag1})...), 412)
	want(t, call(t, a, "PUT", "/api/products/p1", `{"name":"stale"}`, with(auth, []string{"If-Match", `"p1-junk"`})...), 412)
	want(t, call(t, a, "PUT", "/api/products/p1", `{"name":"x"}`, with(auth, []string{"If-None-Match", "*"})...), 412)
	want(t, call(t, a, "PUT", "/api/products/nope", `{"name":"x"}`, with(auth, []string{"If-Match", "*"})...), 412)
	if b := want(t, call(t, a, "GET", "/api/products/p1", ""), 200); !strings.Contains(strings.ReplaceAll(b, " ", ""), `"price":35`) {
		t.Errorf("after refused writes the document is %s, want price 35", b)
	}
	// If-Match: * and a list that holds the current ETag pass.
	want(t, call(t, a, "PUT", "/api/products/p1", `{"name":"Lamp","price":36,"sku":"L-1"}`, with(auth, []string{"If-Match", "*"})...), 200)
	resp = call(t, a, "GET", "/api/products/p1", "")
	want(t, resp, 200)
	etag3 := resp.Header.Get("ETag")
	want(t, call(t, a, "PUT", "/api/products/p1", `{"name":"Lamp","price":37,"sku":"L-1"}`, with(auth, []string{"If-Match", `"1", ` + etag3})...), 200)

	// If-None-Match: * creates only.
	want(t, call(t, a, "PUT", "/api/products/p2", `{"name":"Desk"}`, with(auth, []string{"If-None-Match", "*"})...), 201)

	// JSON merge patch: null removes, objects merge, the rest replaces.
	resp = call(t, a, "PATCH", "/api/products/p1", `{"price":null,"tags":["new"],"name":"Big lamp"}`, with(auth, []string{"Content-Type", "application/merge-patch+json"})...)
	patched := want(t, resp, 200)
	var got map[string]any
	json.Unmarshal([]byte(patched), &got)
	if _, has := got["price"]; has || got["name"] != "Big lamp" || got["sku"] != "L-1" || fmt.Sprint(got["tags"]) != "[new]" {
		t.Errorf("after merge patch: got %s", patched)
	}
	want(t, call(t, a, "PATCH", "/api/products/p1", `{"a":1}`, with(auth, []string{"Content-Type", "application/json"})...), 415)
	want(t, call(t, a, "PATCH", "/api/products/none", `{"a":1}`, with(auth, []string{"Content-Type", "application/merge-patch+json"})...), 404)
	if b := want(t, call(t, a, "GET", "/api/products/p1", ""), 200); b != patched {
		t.Errorf("GET after PATCH: got %s, want %s", b, patched)
	}

	want(t, call(t, a, "DELETE", "/api/products/p1", "", auth...), 204)
	want(t, call(t, a, "GET", "/api/products/p1", ""), 404)
	want(t, call(t, a, "DELETE", "/api/products/p1", "", auth...), 404)
	want(t, call(t, a, "HEAD", "/api/products/p2", ""), 200)
}

// TestAPIErrors: each bad request is a JSON error with the right status,
// and nothing is written.
func TestAPIErrors(t *testing.T) {
	st := newStack(t, stackConfig{})
	a := newTestAPI(t, st, nil)
	want(t, call(t, a, "PUT", "/api/users/u1", `{"email":"Ann@example.com","name":"Ann"}`, auth...), 201)

	for _, tc := range []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		contains                 string
		header                   [2]string
	}{
		{"body over the limit", "PUT", "/api/products/big", `{"x":"` + strings.Repeat("a", 5000) + `"}`, auth, 413, `"limit":4096`, [2]string{}},
		{"malformed JSON", "PUT", "/api/products/bad", `{"name": "x",, }`, auth, 400, `"offset":14`, [2]string{}},
		{"not an object", "PUT", "/api/products/bad", `[1,2]`, auth, 400, "JSON object", [2]string{}},
		{"empty body", "PUT", "/api/products/bad", ``, auth, 400, `"offset":0`, [2]string{}},
		{"unknown collection", "GET", "/api/widgets/1", ``, nil, 404, `unknown collection \"widgets\"`, [2]string{}},
		{"no collection", "GET", "/api/", ``, nil, 404, "no collection", [2]string{}},
		{"invalid id", "GET", "/api/products/a%20b", ``, nil, 400, "invalid document id", [2]string{}},
		{"id too long", "PUT", "/api/products/" + strings.Repeat("x", 129), `{}`, auth, 400, "invalid document id", [2]string{}},
		{"nested path", "GET", "/api/products/a/b", ``, nil, 400, "invalid document id", [2]string{}},
		{"missing token", "PUT", "/api/products/t", `{}`, nil, 401, "bearer token", [2]string{"WWW-Authenticate", `Bearer realm="assetctl"`}},
		{"wrong token", "PUT", "/api/products/t", `{}`, []string{"Authorization", "Bearer s3cret-tokeN"}, 401, "not valid", [2]string{"WWW-Authenticate", `Bearer realm="assetctl", error="invalid_token"`}},
		{"basic auth", "DELETE", "/api/products/t", ``, []string{"Authorization", "Basic czNjcmV0LXRva2Vu"}, 401, "not valid", [2]string{}},
		{"private read without token", "GET", "/api/users/u1", ``, nil, 401, "bearer token", [2]string{}},
		{"private list without token", "GET", "/api/users", ``, nil, 401, "bearer token", [2]string{}},
		{"duplicate unique field", "PUT", "/api/users/u2", `{"email":"ann@EXAMPLE.com"}`, auth, 409, `"field":"email"`, [2]string{}},
		{"method on item", "POST", "/api/products/x", `{}`, auth, 405, `"allow"`, [2]string{"Allow", itemAllow}},
		{"method on list", "DELETE", "/api/products", ``, auth, 405, `"allow"`, [2]string{"Allow", listAllow}},
		{"bad limit", "GET", "/api/products?limit=0", ``, nil, 400, "limit", [2]string{}},
		{"limit too big", "GET", "/api/products?limit=1001", ``, nil, 400, "limit", [2]string{}},
		{"malformed query", "GET", "/api/products?cursor=%%%", ``, nil, 400, "query", [2]string{}},
		{"bad cursor", "GET", "/api/products?cursor=zzz", ``, nil, 400, "", [2]string{}},
		{"xml body", "PUT", "/api/products/x", `<a/>`, with(auth, []string{"Content-Type", "text/xml"}), 415, "Content-Type", [2]string{}},
		{"missing document", "GET", "/api/products/nothere", ``, nil, 404, "not found", [2]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := call(t, a, tc.method, tc.path, tc.body, tc.hdr...)
			body := want(t, resp, tc.status)
			var e map[string]any
			if err := json.Unmarshal([]byte(body), &e); err != nil || e["error"] == "" || e["status"] != float64(tc.status) {
				t.Errorf("error body %q: want JSON with error and status %d", body, tc.status)
			}
			if !strings.Contains(body, tc.contains) {
				t.Errorf("error body %s: want it to contain %s", body, tc.contains)
			}
			if tc.header[0] != "" && resp.Header.Get(tc.header[0]) != tc.header[1] {
				t.Errorf("%s: got %q, want %q", tc.header[0], resp.Header.Get(tc.header[0]), tc.header[1])
			}
			if resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("an error's Cache-Control: got %q, want no-store", resp.Header.Get("Cache-Control"))
			}
		})
	}
	// Nothing was written by the refused requests.
	for _, id := range []string{"big", "bad", "t", "x"} {
		want(t, call(t, a, "GET", "/api/products/"+id, ""), 404)
	}
	want(t, call(t, a, "GET", "/api/users/u2", "", auth...), 404)
	// A token-protected read with the token is private.
	resp := call(t, a, "GET", "/api/users/u1", "", auth...)
	want(t, resp, 200)
	if cc, xk := resp.Header.Get("Cache-Control"), resp.Header.Get("xkey"); cc != "private, no-store" || xk != "" {
		t.Errorf("private read: got Cache-Control %q xkey %q, want private, no-store and no tags", cc, xk)
	}
}

// TestAPIPatchTooLarge: a patch within the API's body limit that makes
// the document larger than the store's limit answers 413, nothing written.
func TestAPIPatchTooLarge(t *testing.T) {
	st := newStack(t, stackConfig{NoCache: true, MaxDocBytes: 200})
	a := newTestAPI(t, st, nil)
	want(t, call(t, a, "PUT", "/api/products/g", `{"a":"`+strings.Repeat("x", 150)+`"}`, auth...), 201)
	body := want(t, call(t, a, "PATCH", "/api/products/g", `{"b":"`+strings.Repeat("y", 150)+`"}`,
		with(auth, []string{"Content-Type", "application/merge-patch+json"})...), 413)
	if !strings.Contains(body, "limit") {
		t.Errorf("413 body %s does not name the limit", body)
	}
	if got := want(t, call(t, a, "GET", "/api/products/g", ""), 200); strings.Contains(got, `"b"`) {
		t.Errorf("the refused patch was written: %s", got)
	}
}

func TestAPIWithoutTokensRefusesWrites(t *testing.T) {
	st := newStack(t, stackConfig{NoCache: true})
	a := newTestAPI(t, st, func(o *APIOptions) { o.Tokens = nil })
	want(t, call(t, a, "PUT", "/api/products/x", `{}`, auth...), 401)
	if _, err := NewAPI(st.Docs, APIOptions{Collections: []APICollection{{Name: "products"}}, Tokens: []string{""}}); err == nil {
		t.Errorf("an empty token: got no error")
	}
}

func TestAPICORS(t *testing.T) {
	st := newStack(t, stackConfig{NoCache: true})
	off := newTestAPI(t, st, nil)
	resp := call(t, off, "OPTIONS", "/api/products/x", "", "Origin", "https://app.example.com", "Access-Control-Request-Method", "PUT")
	want(t, resp, 204)
	if resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.Header.Get("Allow") != itemAllow {
		t.Errorf("CORS off: got Access-Control-Allow-Origin %q Allow %q", resp.Header.Get("Access-Control-Allow-Origin"), resp.Header.Get("Allow"))
	}

	a := newTestAPI(t, st, func(o *APIOptions) {
		o.CORS = CORSOptions{AllowedOrigins: []string{"https://app.example.com"}, MaxAge: 10 * time.Minute}
	})
	resp = call(t, a, "OPTIONS", "/api/products/x", "", "Origin", "https://app.example.com",
		"Access-Control-Request-Method", "PUT", "Access-Control-Request-Headers", "authorization, content-type")
	want(t, resp, 204)
	for k, v := range map[string]string{
		"Access-Control-Allow-Origin":  "https://app.example.com",
		"Access-Control-Allow-Methods": "GET, HEAD, PUT, PATCH, DELETE",
		"Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match, If-None-Match",
		"Access-Control-Max-Age":       "600",
	} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("preflight %s: got %q, want %q", k, got, v)
		}
	}
	resp = call(t, a, "OPTIONS", "/api/products/x", "", "Origin", "https://evil.example", "Access-Control-Request-Method", "PUT")
	want(t, resp, 204)
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("preflight from an origin not allowed: got Access-Control-Allow-Origin %q", got)
	}
	resp = call(t, a, "PUT", "/api/products/c1", `{"a":1}`, with(auth, []string{"Origin", "https://app.example.com"})...)
	want(t, resp, 201)
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" || !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "ETag") ||
		!strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Origin") {
		t.Errorf("actual CORS response headers: %v", resp.Header)
	}
	if _, err := NewAPI(st.Docs, APIOptions{Collections: []APICollection{{Name: "products"}}, CORS: CORSOptions{AllowedOrigins: []string{"https://a.example/"}}}); err == nil {
		t.Errorf("an allowed origin with a path: got no error")
	}
}

// TestAPIListAndShardOutage pages through a collection newest first, then
// stops one shard: lists say they are partial (header and body), that
// shard's documents answer 503 with Retry-After, every other one 200.
func TestAPIListAndShardOutage(t *testing.T) {
	st := newStack(t, stackConfig{PrivateShard: true, NoCache: true})
	a := newTestAPI(t, st, func(o *APIOptions) { o.RetryAfter = 7 * time.Second })
	const n = 30
	onShard := map[string][]string{}
	for i := range n {
		id := fmt.Sprintf("item-%02d", i)
		want(t, call(t, a, "PUT", "/api/products/"+id, fmt.Sprintf(`{"n":%d}`, i), auth...), 201)
		onShard[st.shardOf(t, "products", id)] = append(onShard[st.shardOf(t, "products", id)], id)
	}
	if len(onShard["s3"]) == 0 || len(onShard["s0"]) == 0 {
		t.Fatalf("test data does not cover shards s0 and s3: %v", onShard)
	}

	var ids []string
	path := "/api/products?limit=7"
	for pages := 0; path != ""; pages++ {
		if pages > n {
			t.Fatalf("pagination does not end")
		}
		resp := call(t, a, "GET", path, "")
		var page listPage
		if err := json.Unmarshal([]byte(want(t, resp, 200)), &page); err != nil {
			t.Fatal(err)
		}
		if page.Partial || resp.Header.Get("X-Partial-Result") != "" {
			t.Fatalf("page %s is partial with every shard up", path)
		}
		for _, it := range page.Items {
			ids = append(ids, it.ID)
		}
		path = ""
		if page.Next != "" {
			link := resp.Header.Get("Link")
			wantLink := `</api/products?` + url.Values{"cursor": {page.Next}, "limit": {"7"}}.Encode() + `>; rel="next"`
			if link != wantLink {
				t.Fatalf("Link: got %q, want %q", link, wantLink)
			}
			path = strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`)
		} else if resp.Header.Get("Link") != "" {
			t.Errorf("the last page has a Link header")
		}
	}
	if len(ids) != n {
		t.Fatalf("pages held %d documents, want %d: %v", len(ids), n, ids)
	}
	for i, id := range ids {
		if wantID := fmt.Sprintf("item-%02d", n-1-i); id != wantID {
			t.Fatalf("document %d of the list: got %s, want %s (newest first)", i, id, wantID)
		}
	}

	st.Private.Stop(t)
	resp := call(t, a, "GET", "/api/products?limit=100", "")
	var page listPage
	json.Unmarshal([]byte(want(t, resp, 200)), &page)
	if got := resp.Header.Get("X-Partial-Result"); got != "shards=s3" {
		t.Errorf("X-Partial-Result: got %q, want shards=s3", got)
	}
	if !page.Partial || fmt.Sprint(page.UnavailableShards) != "[s3]" || len(page.Items) != n-len(onShard["s3"]) {
		t.Errorf("partial page: got partial=%v shards=%v %d items, want true [s3] %d", page.Partial, page.UnavailableShards, len(page.Items), n-len(onShard["s3"]))
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("a partial page's Cache-Control: got %q, want no-store", cc)
	}
	for shard, docs := range onShard {
		for _, id := range docs {
			resp := call(t, a, "GET", "/api/products/"+id, "")
			if shard == "s3" {
				body := want(t, resp, 503)
				if resp.Header.Get("Retry-After") != "7" || !strings.Contains(body, `"shard":"s3"`) {
					t.Errorf("%s on the stopped shard: Retry-After %q body %s", id, resp.Header.Get("Retry-After"), body)
				}
			} else {
				want(t, resp, 200)
			}
		}
	}
	want(t, call(t, a, "PUT", "/api/products/"+onShard["s3"][0], `{"n":-1}`, auth...), 503)
	want(t, call(t, a, "PUT", "/api/products/"+onShard["s0"][0], `{"n":-1}`, auth...), 200)

	st.Private.Start(t)
	want(t, call(t, a, "GET", "/api/products/"+onShard["s3"][0], ""), 200)
}

// TestAPIRouteMetrics: through a Server, API requests are labelled with
// their collection's route pattern, never the raw path.
func TestAPIRouteMetrics(t *testing.T) {
	st := newStack(t, stackConfig{NoCache: true})
	a := newTestAPI(t, st, nil)
	mux := http.NewServeMux()
	mux.Handle("/api/", a)
	s := newTestServer(t, mux, ServerOptions{})
	want(t, call(t, s.Handler(), "PUT", "/api/products/m1", `{}`, auth...), 201)
	want(t, call(t, s.Handler(), "GET", "/api/products/m1", ""), 200)
	want(t, call(t, s.Handler(), "GET", "/api/nothing/m1", ""), 404)
	for route, code := range map[string]string{"/api/products/{id}": "200", "/api/{collection}": "404"} {
		c, err := s.requests.GetMetricWithLabelValues(route, "GET", code)
		if err != nil {
			t.Fatal(err)
		}
		if got := testutilValue(c); got != 1 {
			t.Errorf("requests{route=%q,code=%s}: got %v, want 1", route, code, got)
		}
	}
}
