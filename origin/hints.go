package origin

import (
	"net/http"
	"slices"
	"strings"
)

// MaxLinkHeader is the byte budget of LinkHeader. Proxies and servers
// reject responses with large headers (nginx's default buffer is 4 KiB,
// Apache's field limit 8 KiB: rails/rails#48402, laravel/framework#49214),
// and preloads beyond the first few render-blocking files gain little.
const MaxLinkHeader = 1000

// maxLinkCache bounds the per-snapshot memo of LinkHeader results; pages
// name their entries as constants, so a handful of keys is normal.
const maxLinkCache = 256

// LinkHeader returns a Link header value announcing the entries' files:
// rel=preload; as=style for their stylesheets, rel=modulepreload for the
// entry scripts and then for their statically imported chunks, each with
// crossorigin (matching the tags EntryTags writes, so the browser reuses
// the preloaded response) and integrity. Items go in that priority order
// and the value stays within MaxLinkHeader bytes: the first item that does
// not fit and every item after it are left out whole, never cut. Unknown
// names are skipped (Templates resolves the constant ones at start-up).
func (a *Assets) LinkHeader(entries []string) string {
	key := strings.Join(entries, "\x00")
	if v, ok := a.links.Load(key); ok {
		return v.(string)
	}
	v := a.linkHeader(entries, MaxLinkHeader)
	if a.nlinks.Load() < maxLinkCache {
		if _, loaded := a.links.LoadOrStore(key, v); !loaded {
			a.nlinks.Add(1)
		}
	}
	return v
}

func (a *Assets) linkHeader(entries []string, limit int) string {
	var css, scripts, chunks []*asset
	for _, name := range entries {
		t, err := a.entry(name)
		if err != nil {
			continue
		}
		css = append(css, t.css...)
		if t.script != nil && t.script.kind == kindModule {
			scripts = append(scripts, t.script)
		}
		chunks = append(chunks, t.preload...)
	}
	seen := map[*asset]bool{}
	var b strings.Builder
	add := func(as *asset, rel string) bool {
		if seen[as] {
			return true
		}
		seen[as] = true
		item := linkItem(as, rel)
		sep := 0
		if b.Len() > 0 {
			sep = 2
		}
		if b.Len()+sep+len(item) > limit {
			return false
		}
		if sep > 0 {
			b.WriteString(", ")
		}
		b.WriteString(item)
		return true
	}
	for _, c := range css {
		if !add(c, "preload; as=style") {
			return b.String()
		}
	}
	for _, s := range append(scripts, chunks...) {
		if !add(s, "modulepreload") {
			return b.String()
		}
	}
	return b.String()
}

// linkItem is one Link value. URLs in a manifest are escaped paths, so
// they hold no '>' or ','; the integrity value is quoted because base64
// may hold '/', '+' and '='.
func linkItem(as *asset, rel string) string {
	s := "<" + as.rawURL + ">; rel=" + rel + "; crossorigin=anonymous"
	if as.integrity != "" && !strings.ContainsAny(as.integrity, "\"\\") {
		s += `; integrity="` + as.integrity + `"`
	}
	return s
}

// EarlyHints sends link (a LinkHeader value) in a 103 Early Hints response
// before the handler has produced the page, so the browser fetches the
// stylesheets and scripts while the origin is still querying its database.
// It does nothing for requests below HTTP/2 (some HTTP/1.1 clients and
// proxies mishandle 1xx responses), for requests that are not navigations
// (Sec-Fetch-Mode other than "navigate"; browsers act on a 103 only for
// documents), and for an empty link. The Link header stays set for the
// final response too; a caller that already set it to link (so HTTP/1.1
// responses carry it) does not get it twice.
//
// Call it before anything else writes the status or body. It must not run
// under http.TimeoutHandler, or behind any middleware that records or
// buffers the status: TimeoutHandler takes the first WriteHeader as the
// final status, so the 103 would become the response's status and the
// real one would be dropped. Bound handler time with the request context
// or http.ResponseController.SetWriteDeadline instead.
func EarlyHints(w http.ResponseWriter, r *http.Request, link string) {
	if link == "" || r.ProtoMajor < 2 {
		return
	}
	if m := r.Header.Get("Sec-Fetch-Mode"); m != "" && m != "navigate" {
		return
	}
	if !slices.Contains(w.Header().Values("Link"), link) {
		w.Header().Add("Link", link)
	}
	w.WriteHeader(http.StatusEarlyHints)
}
