package devserver

import (
	"bytes"
	_ "embed"
	"fmt"
	"html"
	"net"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"
)

//go:embed client.js
var clientJS []byte

// ServeHTTP serves the current build from memory, the live-reload script
// and its event stream.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.hostAllowed(r.Host) {
		http.Error(w, fmt.Sprintf("assetctl dev: Host %q is not allowed: requests must name this server "+
			"(DNS rebinding protection). To allow it, restart with --allowed-host %s", r.Host, hostOnly(r.Host)), http.StatusForbidden)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "assetctl dev serves GET and HEAD only", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	switch r.URL.Path {
	case clientPath:
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, "client.js", time.Time{}, bytes.NewReader(clientJS))
		return
	case eventsPath:
		s.hub.ServeHTTP(w, r)
		return
	case statePath:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(s.hub.stateJSON())
		return
	}

	// Requests are answered only from the in-memory build, keyed by output
	// path, so no request path can reach the file system; path.Clean on a
	// rooted path also drops every "..".
	clean := path.Clean("/" + r.URL.Path)
	key := strings.TrimPrefix(clean, "/")
	if strings.HasSuffix(r.URL.Path, "/") {
		key = path.Join(key, "index.html")
	}
	cur := s.current()
	f, ok := cur.file(key)
	if !ok && !strings.HasSuffix(r.URL.Path, "/") {
		if _, dir := cur.file(path.Join(key, "index.html")); dir {
			target := clean + "/"
			if r.URL.RawQuery != "" {
				target += "?" + r.URL.RawQuery
			}
			http.Redirect(w, r, target, http.StatusMovedPermanently)
			return
		}
	}
	if !ok {
		s.notFound(w, r, cur, clean)
		return
	}
	w.Header().Set("Content-Type", f.contentType)
	if f.immutable {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		// Pages and unhashed files revalidate on every load.
		w.Header().Set("Cache-Control", "no-cache")
	}
	if f.hash != "" && !f.page {
		w.Header().Set("ETag", `"`+f.hash+`"`)
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.data))
}

// notFound answers with a page that says what was asked for and what was
// probably meant; it carries the live-reload script, so it turns into the
// page as soon as a build produces it.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request, cur *site, clean string) {
	var b strings.Builder
	fmt.Fprintf(&b, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>404 %s</title></head>\n<body>\n", html.EscapeString(clean))
	fmt.Fprintf(&b, "<h1>404 Not Found</h1>\n<p>The build has no file at <code>%s</code>.</p>\n", html.EscapeString(clean))
	if cur == nil {
		b.WriteString("<p>The site has not built yet: see the error in the terminal.</p>\n")
	} else if hint := cur.suggest(strings.TrimPrefix(clean, "/")); hint != "" {
		fmt.Fprintf(&b, "<p>Did you mean <a href=\"/%s\">/%s</a>? Built files have content-hashed names; "+
			"reference the source path from a page and the build rewrites it.</p>\n", html.EscapeString(hint), html.EscapeString(hint))
	}
	fmt.Fprintf(&b, "<p>Serving the build of <code>%s</code>.</p>\n</body></html>\n", html.EscapeString(s.siteDir))
	buildID := ""
	if cur != nil {
		buildID = cur.buildID
	}
	page := injectClient([]byte(b.String()), buildID)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusNotFound)
	if r.Method != http.MethodHead {
		_, _ = w.Write(page)
	}
}

// hostAllowed guards against DNS rebinding: a page on another site whose
// name was pointed at 127.0.0.1 would send its own Host header. Loopback
// names, IP literals and the configured hosts are accepted.
func (s *Server) hostAllowed(hostport string) bool {
	host := strings.ToLower(hostOnly(hostport))
	if host == "" {
		return false
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	if net.ParseIP(host) != nil {
		return true
	}
	return slices.Contains(s.allowedHosts, host)
}

// hostOnly strips the port from a Host header value.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return strings.Trim(h, "[]")
	}
	return strings.Trim(hostport, "[]")
}
