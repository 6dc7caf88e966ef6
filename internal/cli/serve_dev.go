package cli

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"html"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/assetctl/assetctl/bundler"
	"github.com/assetctl/assetctl/devserver"
	"github.com/assetctl/assetctl/internal/config"
	"github.com/assetctl/assetctl/origin"
)

// devPrefix is where assetctl serve --dev serves the dev build's assets,
// on the origin itself (same origin: no CORS needed for module scripts).
const devPrefix = "/__dev/"

// devEventsPath is the reload stream pages open in --dev.
const devEventsPath = "/__serve/events"

// devAssets is assetctl serve --dev's build: assetctl dev's pipeline
// (bundler + watcher + in-memory server) writing to a temporary directory
// the origin reads its manifest from. Pages are told to reload after the
// origin has picked up a rebuild, so a reload never sees the old build.
type devAssets struct {
	out    string
	tmp    string
	srv    *devserver.Server
	runErr chan error

	// onRebuild (set with setOnRebuild) runs after each successful
	// rebuild, before pages reload; an error (a template naming a missing
	// asset) is printed and the pages are not reloaded.
	onRebuild atomic.Pointer[func() error]

	mu      sync.Mutex
	clients map[chan struct{}]bool
}

func startDevAssets(ctx context.Context, e *env, site string, file *config.File) (*devAssets, error) {
	tmp, err := os.MkdirTemp("", "assetctl-serve-dev-*")
	if err != nil {
		return nil, fmt.Errorf("serve --dev: create build dir: %w", err)
	}
	d := &devAssets{out: filepath.Join(tmp, "out"), tmp: tmp, runErr: make(chan error, 1), clients: map[chan struct{}]bool{}}
	opts, err := bundlerOptions(file.Build, site, d.out)
	if err != nil {
		d.close()
		return nil, fmt.Errorf("serve --dev: build settings: %w", err)
	}
	opts.BaseURL = "" // the origin gives the asset base URL
	opts.Logger = e.log
	// The dev build must publish what the templates name, or the origin
	// cannot load them on it. The --templates flag is not seen here:
	// ASSETCTL_TEMPLATES, then serve: templates:, then the default; a
	// directory that is not there is for the origin to report.
	tplDir := cmp.Or(os.Getenv(config.EnvName("templates")), file.Serve.Templates, "templates")
	abs := tplDir
	if !filepath.IsAbs(abs) {
		abs = filepath.Join(site, abs)
	}
	if fi, err := os.Stat(abs); err == nil && fi.IsDir() {
		if err := addTemplateRoots(&opts, tplDir, e.log); err != nil {
			d.close()
			return nil, fmt.Errorf("serve --dev: %w", err)
		}
	}
	b, err := bundler.New(opts)
	if err != nil {
		d.close()
		return nil, fmt.Errorf("serve --dev: build settings: %w", err)
	}
	built := make(chan devserver.Rebuild, 1)
	d.srv, err = devserver.New(devserver.Options{
		SiteDir: site, OutDir: d.out, Builder: b, Logger: e.log,
		OnRebuild: func(r devserver.Rebuild) {
			fmt.Fprintln(e.stdout, r.String())
			if r.Initial {
				built <- r
				return
			}
			if fn := d.onRebuild.Load(); r.Err == nil && fn != nil {
				if err := (*fn)(); err != nil {
					fmt.Fprintf(e.stdout, "assetctl serve: %v\n", err)
					return
				}
				d.reloadPages()
			}
		},
	})
	if err != nil {
		b.Close()
		d.close()
		return nil, err
	}
	// devserver.Run needs a listener of its own; the origin serves the
	// same handler under devPrefix, so this one is only loopback.
	ln, err := devserver.Listen("127.0.0.1:0")
	if err != nil {
		b.Close()
		d.close()
		return nil, err
	}
	go func() {
		defer b.Close()
		d.runErr <- d.srv.Run(ctx, ln)
	}()
	select {
	case r := <-built:
		if r.Err != nil {
			d.close()
			return nil, fmt.Errorf("serve --dev: first build: %w", r.Err)
		}
	case err := <-d.runErr:
		d.close()
		return nil, fmt.Errorf("serve --dev: %w", err)
	}
	return d, nil
}

func (d *devAssets) close() { _ = os.RemoveAll(d.tmp) }

// setOnRebuild sets what runs after each successful rebuild; rebuilds run
// on the dev server's goroutine.
func (d *devAssets) setOnRebuild(fn func() error) { d.onRebuild.Store(&fn) }

// mount serves the dev build's files and the pages' reload stream.
func (d *devAssets) mount(mux *http.ServeMux) {
	mux.Handle(devPrefix, http.StripPrefix(strings.TrimSuffix(devPrefix, "/"), d.srv.Handler()))
	mux.HandleFunc("GET "+devEventsPath, d.events)
}

func (d *devAssets) reloadPages() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for c := range d.clients {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// events is a Server-Sent Events stream sending "reload" after each rebuild.
func (d *devAssets) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	c := make(chan struct{}, 1)
	d.mu.Lock()
	d.clients[c] = true
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.clients, c)
		d.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{}) // a stream outlives the server's write timeout
	fmt.Fprint(w, ": connected\n\n")
	fl.Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-c:
			fmt.Fprint(w, "data: reload\n\n")
			fl.Flush()
		}
	}
}

// inject adds the reload script (with the request's CSP nonce) to every
// HTML page the origin renders in --dev.
func (d *devAssets) inject(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || strings.HasPrefix(r.URL.Path, devPrefix) || r.URL.Path == devEventsPath {
			next.ServeHTTP(w, r)
			return
		}
		bw := &bufferedWriter{ResponseWriter: w}
		next.ServeHTTP(bw, r)
		body := bw.buf.Bytes()
		if bw.status == 0 {
			bw.status = http.StatusOK
		}
		if strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
			script := `<script nonce="` + html.EscapeString(origin.Nonce(r.Context())) + `">new EventSource("` + devEventsPath + `").onmessage = () => location.reload();</script>`
			at := bytes.LastIndex(body, []byte("</body>"))
			if at < 0 {
				at = len(body)
			}
			body = slices.Concat(body[:at], []byte(script), body[at:])
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.Header().Set("Cache-Control", "no-store")
		}
		w.WriteHeader(bw.status)
		_, _ = w.Write(body)
	})
}

// bufferedWriter holds a response's status and body; 1xx responses
// (103 Early Hints) pass straight through.
type bufferedWriter struct {
	http.ResponseWriter
	status int
	buf    bytes.Buffer
}

func (b *bufferedWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 {
		b.ResponseWriter.WriteHeader(code)
		return
	}
	if b.status == 0 {
		b.status = code
	}
}

func (b *bufferedWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.buf.Write(p)
}

func (b *bufferedWriter) Unwrap() http.ResponseWriter { return b.ResponseWriter }
