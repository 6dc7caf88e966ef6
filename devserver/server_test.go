package devserver

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/assetctl/assetctl/internal/testsvc"
)

// devServer is a running Server for a test.
type devServer struct {
	URL      string
	Addr     string
	Site     string
	Builder  *copyBuilder
	Rebuilds chan Rebuild
	Server   *Server
	stop     func() error
}

// startDev copies the fixture site, starts a Server on a free loopback
// port and waits for its first build.
func startDev(t testing.TB, opts Options) *devServer {
	t.Helper()
	return startDevOn(t, opts, "127.0.0.1:0")
}

// startDevOn is startDev listening on addr. When opts.Builder is set it is
// used (with opts.OutDir) instead of a copyBuilder.
func startDevOn(t testing.TB, opts Options, addr string) *devServer {
	t.Helper()
	site := opts.SiteDir
	if site == "" {
		site = copyTree(t, "testdata/site")
	}
	d := &devServer{Site: site, Rebuilds: make(chan Rebuild, 1000)}
	opts.SiteDir = site
	if opts.Watch.Debounce == 0 {
		// Tests make one change at a time and wait for it: a wide quiet
		// window keeps a loaded machine from splitting one change in two.
		// Benchmarks pass DefaultDebounce to measure what users get.
		opts.Watch.Debounce = 100 * time.Millisecond
	}
	if opts.Builder == nil {
		d.Builder = newCopyBuilder(t, site)
		opts.OutDir, opts.Builder = d.Builder.out, d.Builder
	}
	opts.OnRebuild = func(r Rebuild) { d.Rebuilds <- r }
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	d.Server = s
	ln, err := Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	d.Addr = ln.Addr().String()
	d.URL = "http://" + d.Addr
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, ln) }()
	stopped := false
	d.stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			return fmt.Errorf("Run did not return within 20s of cancel")
		}
	}
	t.Cleanup(func() {
		if err := d.stop(); err != nil {
			t.Errorf("stop dev server: %v", err)
		}
	})
	r := d.nextRebuild(t)
	if !r.Initial || r.Err != nil {
		t.Fatalf("first build: got %v, want a good initial build", r)
	}
	return d
}

// nextRebuild waits (correctness wait, generous deadline) for a build.
func (d *devServer) nextRebuild(t testing.TB) Rebuild {
	t.Helper()
	select {
	case r := <-d.Rebuilds:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("no rebuild within 20s")
	}
	return Rebuild{}
}

// write saves a site file the way most editors do, writing a temp file and
// renaming it over the old one, so no rebuild can see it half-written.
func (d *devServer) write(t testing.TB, name, content string) {
	t.Helper()
	p := filepath.Join(d.Site, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(f.Name(), p); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, url string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" {
			req.Host = header[i+1]
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func TestServeContentTypesAndCaching(t *testing.T) {
	d := startDev(t, Options{})
	for _, tc := range []struct {
		path, contentType, cacheControl, bodyHas string
	}{
		{"/", "text/html; charset=utf-8", "no-cache", `<h1 id="title">Hello</h1>`},
		{"/index.html", "text/html; charset=utf-8", "no-cache", "<title>fixture</title>"},
		{"/blog/", "text/html; charset=utf-8", "no-cache", "<h1>Blog</h1>"},
		{"/css/site.css", "text/css; charset=utf-8", "no-cache", "rgb(255, 0, 0)"},
		{"/js/app.js", "text/javascript; charset=utf-8", "no-cache", "version 1"},
		{"/img/logo.svg", "image/svg+xml", "no-cache", "<svg"},
		{"/data.json", "application/json", "no-cache", `"ok"`},
		{clientPath, "text/javascript; charset=utf-8", "no-cache", "EventSource"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, body := get(t, d.URL+tc.path)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status: got %d, want 200; body %q", resp.StatusCode, body)
			}
			if got := resp.Header.Get("Content-Type"); got != tc.contentType {
				t.Errorf("Content-Type: got %q, want %q", got, tc.contentType)
			}
			if got := resp.Header.Get("Cache-Control"); got != tc.cacheControl {
				t.Errorf("Cache-Control: got %q, want %q", got, tc.cacheControl)
			}
			if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options: got %q, want nosniff", got)
			}
			if !strings.Contains(body, tc.bodyHas) {
				t.Errorf("body: got %q, want it to contain %q", body, tc.bodyHas)
			}
		})
	}
	t.Run("pages carry the client", func(t *testing.T) {
		_, body := get(t, d.URL+"/")
		i, j := strings.Index(body, `<script src="/__assetctl/client.js"`), strings.Index(body, "</head>")
		if i < 0 || j < 0 || i > j {
			t.Fatalf("got %q, want the client script right before </head>", body)
		}
		_, css := get(t, d.URL+"/css/site.css")
		if strings.Contains(css, "__assetctl") {
			t.Fatalf("stylesheet: got %q, want it untouched", css)
		}
	})
	t.Run("directory without slash redirects", func(t *testing.T) {
		resp, _ := get(t, d.URL+"/blog?x=1")
		if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/blog/?x=1" {
			t.Fatalf("got %d Location %q, want 301 to /blog/?x=1", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
	t.Run("conditional GET", func(t *testing.T) {
		resp, _ := get(t, d.URL+"/css/site.css")
		etag := resp.Header.Get("ETag")
		if etag == "" {
			t.Fatal("ETag: got none, want the content hash")
		}
		resp, _ = get(t, d.URL+"/css/site.css", "If-None-Match", etag)
		if resp.StatusCode != http.StatusNotModified {
			t.Fatalf("status: got %d, want 304", resp.StatusCode)
		}
	})
}

func TestNotFoundSaysWhatWasAskedFor(t *testing.T) {
	d := startDev(t, Options{})
	resp, body := get(t, d.URL+"/css/missing.css")
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status: got %d, want 404", resp.StatusCode)
	}
	if got := resp.Header.Get("Content-Type"); got != "text/html; charset=utf-8" {
		t.Errorf("Content-Type: got %q, want text/html", got)
	}
	for _, want := range []string{"404 Not Found", "<code>/css/missing.css</code>", clientPath} {
		if !strings.Contains(body, want) {
			t.Errorf("body: got %q, want it to contain %q", body, want)
		}
	}
	_, body = get(t, d.URL+"/js/app.min.js")
	if !strings.Contains(body, `Did you mean <a href="/js/app.js">`) {
		t.Errorf("body: got %q, want a suggestion of /js/app.js", body)
	}
}

func TestHostHeaderCheck(t *testing.T) {
	d := startDev(t, Options{AllowedHosts: []string{"dev.example.test"}})
	_, port, _ := net.SplitHostPort(d.Addr)
	for _, tc := range []struct {
		host string
		want int
	}{
		{"127.0.0.1:" + port, http.StatusOK},
		{"localhost:" + port, http.StatusOK},
		{"LOCALHOST:" + port, http.StatusOK},
		{"app.localhost:" + port, http.StatusOK},
		{"[::1]:" + port, http.StatusOK},
		{"dev.example.test:" + port, http.StatusOK},
		{"evil.example.com:" + port, http.StatusForbidden},
		{"evil.example.com", http.StatusForbidden},
		{"localhost.evil.example.com:" + port, http.StatusForbidden},
		{"127.0.0.1.nip.io:" + port, http.StatusForbidden},
	} {
		t.Run(tc.host, func(t *testing.T) {
			resp, body := get(t, d.URL+"/", "Host", tc.host)
			if resp.StatusCode != tc.want {
				t.Fatalf("status: got %d, want %d; body %q", resp.StatusCode, tc.want, body)
			}
			if tc.want == http.StatusForbidden && (strings.Contains(body, "Hello") || !strings.Contains(body, "--allowed-host")) {
				t.Fatalf("body: got %q, want a refusal naming --allowed-host and no page content", body)
			}
		})
	}
	// The event stream is guarded too.
	resp, _ := get(t, d.URL+eventsPath, "Host", "evil.example.com")
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("events with a foreign Host: got %d, want 403", resp.StatusCode)
	}
}

// rawGet sends path unmodified, as a hostile client would.
func rawGet(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, addr)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestNoPathEscapesTheBuild(t *testing.T) {
	site := copyTree(t, "testdata/site")
	// A secret next to the site and inside it but not part of the build.
	parent := filepath.Dir(site)
	writeFiles(t, parent, map[string]string{"secret.txt": "TOP-SECRET-OUTSIDE"})
	d := startDev(t, Options{SiteDir: site})
	hostname, _ := os.ReadFile("/etc/hostname")
	for _, p := range []string{
		"/../secret.txt",
		"/../../../../etc/hostname",
		"/%2e%2e/secret.txt",
		"/%2e%2e/%2e%2e/%2e%2e/etc/hostname",
		"/..%2fsecret.txt",
		"/css/..%2f..%2fsecret.txt",
		"/..\\secret.txt",
		"//etc/hostname",
		"/css/../../secret.txt",
	} {
		t.Run(p, func(t *testing.T) {
			code, body := rawGet(t, d.Addr, p)
			if strings.Contains(body, "TOP-SECRET") || (len(hostname) > 0 && strings.Contains(body, strings.TrimSpace(string(hostname))+"\n")) {
				t.Fatalf("got %d with a file from outside the build: %q", code, body)
			}
			if code != http.StatusNotFound && code != http.StatusBadRequest {
				t.Fatalf("status: got %d, want 404 or 400", code)
			}
		})
	}
}

func TestLoadSiteStaysInsideOutputDir(t *testing.T) {
	out := t.TempDir()
	outside := filepath.Join(t.TempDir(), "secret.txt")
	writeFiles(t, filepath.Dir(outside), map[string]string{"secret.txt": "secret"})
	if err := os.Symlink(outside, filepath.Join(out, "link.txt")); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(out)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	for _, p := range []string{"../secret.txt", "link.txt"} {
		t.Run(p, func(t *testing.T) {
			m := manifestOf(map[string]string{p: "h"})
			if _, err := loadSite(root, m, nil); err == nil {
				t.Fatalf("loadSite with output %q: got nil error, want a refusal", p)
			}
		})
	}
}

// sse reads the live-reload stream.
type sse struct {
	resp *http.Response
	sc   *bufio.Scanner
}

func openEvents(t *testing.T, d *devServer) *sse {
	t.Helper()
	resp, err := http.Get(d.URL + eventsPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type: got %q, want text/event-stream", ct)
	}
	return &sse{resp: resp, sc: bufio.NewScanner(resp.Body)}
}

func (s *sse) next(t *testing.T) message {
	t.Helper()
	for s.sc.Scan() {
		line := s.sc.Text()
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			var m message
			if err := json.Unmarshal([]byte(data), &m); err != nil {
				t.Fatalf("event %q: %v", data, err)
			}
			return m
		}
	}
	t.Fatalf("event stream ended: %v", s.sc.Err())
	return message{}
}

func TestEventsFollowRebuilds(t *testing.T) {
	d := startDev(t, Options{})
	ev := openEvents(t, d)
	hello := ev.next(t)
	if hello.Type != "hello" || hello.BuildID == "" || len(hello.Errors) != 0 {
		t.Fatalf("first event: got %+v, want hello with a build ID", hello)
	}

	d.write(t, "css/site.css", "h1 { color: rgb(0, 0, 255); }\n")
	if r := d.nextRebuild(t); r.Action != ActionCSS || r.Clients != 1 {
		t.Fatalf("rebuild: got action %q for %d clients, want css for 1", r.Action, r.Clients)
	}
	if calls := d.Builder.changes(); len(calls) != 2 || calls[0] != nil || !slices.Equal(calls[1], []string{"css/site.css"}) {
		t.Fatalf("builder calls: got %q, want the first build with nil, then [css/site.css]", calls)
	}
	m := ev.next(t)
	if m.Type != "css" || len(m.Sheets) != 1 || m.Sheets[0] != (sheetSwap{From: "/css/site.css", To: "/css/site.css"}) {
		t.Fatalf("css change: got %+v, want a css swap of /css/site.css", m)
	}

	d.write(t, "js/app.js", "document.title = 'v2';\n")
	d.nextRebuild(t)
	if m := ev.next(t); m.Type != "reload" {
		t.Fatalf("js change: got %+v, want reload", m)
	}

	d.write(t, "js/app.js", "document.title = ;\n")
	r := d.nextRebuild(t)
	if r.Err == nil || len(r.Messages) != 1 {
		t.Fatalf("broken js: got %+v, want one build error", r)
	}
	m = ev.next(t)
	if m.Type != "error" || len(m.Errors) != 1 || m.Errors[0].File != "js/app.js" || m.Errors[0].Line != 1 || m.Errors[0].Column != 18 {
		t.Fatalf("broken js: got %+v, want an error at js/app.js:1:18", m)
	}
	// The last good build is still served.
	if _, body := get(t, d.URL+"/js/app.js"); !strings.Contains(body, "v2") {
		t.Fatalf("served js while broken: got %q, want the last good build", body)
	}
	// A client connecting now is told about the error at once, and so is a
	// tab that asks for the state (one sharing another tab's stream).
	if m := openEvents(t, d).next(t); m.Type != "hello" || len(m.Errors) != 1 {
		t.Fatalf("hello while broken: got %+v, want it to carry the error", m)
	}
	resp, body := get(t, d.URL+statePath)
	var state message
	if err := json.Unmarshal([]byte(body), &state); err != nil || resp.Header.Get("Cache-Control") != "no-store" || state.Type != "hello" || len(state.Errors) != 1 {
		t.Fatalf("state while broken: got %q (Cache-Control %q), want an uncached hello carrying the error", body, resp.Header.Get("Cache-Control"))
	}

	// Fixing it back to the last good bytes changes no output, but the
	// overlay must still go.
	d.write(t, "js/app.js", "document.title = 'v2';\n")
	if r := d.nextRebuild(t); r.Err != nil || r.Action != ActionNone {
		t.Fatalf("fix: got err %v action %q, want a good build with no output change", r.Err, r.Action)
	}
	if m := ev.next(t); m.Type != "hello" || len(m.Errors) != 0 {
		t.Fatalf("fix: got %+v, want hello without errors", m)
	}
}

func TestRunStopsWithOpenStreams(t *testing.T) {
	d := startDev(t, Options{})
	ev := openEvents(t, d)
	ev.next(t)
	if err := d.stop(); err != nil {
		t.Fatalf("stop: got %v, want a clean stop", err)
	}
	closed := make(chan string, 1)
	go func() {
		for ev.sc.Scan() {
			if ev.sc.Text() != "" {
				closed <- ev.sc.Text()
				return
			}
		}
		closed <- ""
	}()
	select {
	case line := <-closed:
		if line != "" {
			t.Fatalf("stream after stop: got %q, want it closed", line)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("stream still open 20s after stop, want it closed")
	}
	if _, err := net.DialTimeout("tcp", d.Addr, time.Second); err == nil {
		t.Fatal("listener after stop: got a connection, want it closed")
	}
}

func TestFirstBuildFailureStillServes(t *testing.T) {
	site := copyTree(t, "testdata/site")
	writeFiles(t, site, map[string]string{"js/app.js": "let = ;"})
	b := newCopyBuilder(t, site)
	rebuilds := make(chan Rebuild, 10)
	s, err := New(Options{SiteDir: site, OutDir: b.out, Builder: b, OnRebuild: func(r Rebuild) { rebuilds <- r }})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, ln) }()
	defer func() { cancel(); <-done }()
	if r := <-rebuilds; r.Err == nil || !strings.Contains(r.String(), "js/app.js:1:7") {
		t.Fatalf("first build: got %q, want a failure at js/app.js:1:7", r.String())
	}
	resp, body := get(t, "http://"+ln.Addr().String()+"/")
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "has not built yet") || !strings.Contains(body, clientPath) {
		t.Fatalf("page before any good build: got %d %q, want a 404 carrying the client", resp.StatusCode, body)
	}
}

func TestListenExplainsPortInUse(t *testing.T) {
	addr := testsvc.Addr(testsvc.FreePort(t))
	ln, err := Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Listen(addr)
	if err == nil || !strings.Contains(err.Error(), "--addr") || !strings.Contains(err.Error(), addr) {
		t.Fatalf("second listen: got %v, want an error naming %s and --addr", err, addr)
	}
}

func TestBundlerErrorsAreLocated(t *testing.T) {
	d := bundlerDev(t)
	ev := openEvents(t, d)
	if m := ev.next(t); m.Type != "hello" || len(m.Errors) != 0 {
		t.Fatalf("first event: got %+v, want hello without errors", m)
	}
	goodPage, _ := os.ReadFile(filepath.Join(d.Site, "index.html"))
	goodCSS, _ := os.ReadFile(filepath.Join(d.Site, "css", "site.css"))
	goodJS, _ := os.ReadFile(filepath.Join(d.Site, "js", "app.js"))
	for _, tc := range []struct {
		name, file, content string
		wantFile            string
		wantLine            int
		wantText            string
	}{
		{"bad js", "js/app.js", "import { label } from \"./label.js\";\nlabel(;\n", "js/app.js", 2, `Unexpected ";"`},
		{"bad import", "js/app.js", "import { nope } from \"./nope.js\";\n", "js/app.js", 1, "nope.js"},
		{"missing asset in a page", "index.html", strings.Replace(string(goodPage), "<h1", "<img src=\"img/gone.png\">\n<h1", 1), "index.html", 10, "img/gone.png"},
		{"missing asset in css", "css/site.css", string(goodCSS) + "body { background: url(../img/gone.png); }\n", "css/site.css", 3, "img/gone.png"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d.write(t, tc.file, tc.content)
			m := ev.next(t)
			if m.Type != "error" || len(m.Errors) == 0 {
				t.Fatalf("got %+v, want an error event", m)
			}
			e := m.Errors[0]
			if e.File != tc.wantFile || e.Line != tc.wantLine || !strings.Contains(e.Text, tc.wantText) {
				t.Fatalf("got %s, want %s:%d: ...%s...", e, tc.wantFile, tc.wantLine, tc.wantText)
			}
			if e.LineText == "" {
				t.Errorf("line text: got none, want the source line %d", e.Line)
			}
			// Restore; the overlay is cleared by the next good build.
			writeFiles(t, d.Site, map[string]string{"index.html": string(goodPage), "css/site.css": string(goodCSS), "js/app.js": string(goodJS)})
			for {
				m := ev.next(t)
				if m.Type == "error" {
					t.Fatalf("after restoring: got %+v, want the build good again", m)
				}
				if m.Type == "reload" || m.Type == "css" || (m.Type == "hello" && len(m.Errors) == 0) {
					break
				}
			}
		})
	}
}

func TestBurstIsOneRebuild(t *testing.T) {
	// A quiet window no pause of a loaded machine reaches within the burst.
	d := startDev(t, Options{Watch: WatchOptions{Debounce: 300 * time.Millisecond, MaxDelay: time.Minute}})
	files := map[string]string{}
	for i := range 500 {
		files[fmt.Sprintf("gen/p%d/f%03d.css", i%5, i)] = fmt.Sprintf(".c%d { color: red; }", i)
	}
	writeFiles(t, d.Site, files)
	r := d.nextRebuild(t)
	if n := len(r.Changed); n != 506 { // 500 files, gen and its 5 directories
		t.Fatalf("burst rebuild: got %d changed paths, want 506", n)
	}
	d.write(t, "after.css", "p{}")
	if r := d.nextRebuild(t); !slices.Equal(r.Changed, []string{"after.css"}) {
		t.Fatalf("next rebuild: got %v, want only after.css", r.Changed)
	}
	if n := len(d.Builder.changes()); n != 3 {
		t.Fatalf("builds: got %d, want 3 (initial, burst, after.css)", n)
	}
}
