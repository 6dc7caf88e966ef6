// Package devserver is the engine of `assetctl dev`: it watches a site's
// sources, rebuilds them through the same builder as `assetctl build`,
// serves the result from memory and keeps open pages current over
// Server-Sent Events: a page or script change reloads the page, a CSS-only
// change swaps stylesheets in place, a build error shows an overlay with
// file, line, column and message that goes away once the error is fixed.
//
// It binds to loopback by default, refuses requests whose Host header names
// another site (DNS rebinding) and serves only what the build produced.
package devserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/assetctl/assetctl/bundler"
	"github.com/assetctl/assetctl/manifest"
)

// Builder builds the site into the output directory; *bundler.Builder, the
// pipeline of `assetctl build`, is one. Build is called once with no paths
// for the first build, then with the paths (relative to the site root,
// forward slashes) that changed since the previous call, or with none when
// anything may have changed. It returns the manifest of the output
// directory, or an error; a *bundler.BuildError carries the positions the
// overlay shows.
type Builder interface {
	Build(ctx context.Context, changed ...string) (*manifest.Manifest, error)
}

var _ Builder = (*bundler.Builder)(nil)

// Message is one build error as the overlay and terminal show it.
type Message struct {
	// File is relative to the site root; empty when unknown.
	File string `json:"file,omitempty"`
	// Line and Column are 1-based; 0 when unknown.
	Line   int `json:"line,omitempty"`
	Column int `json:"column,omitempty"`
	// Text says what is wrong.
	Text string `json:"text"`
	// LineText is the source line, for a caret under Column; optional.
	LineText string `json:"lineText,omitempty"`
}

// String formats m as file:line:column: text.
func (m Message) String() string {
	return bundler.Message{File: m.File, Line: m.Line, Column: m.Column, Text: m.Text}.String()
}

// Options configures a Server. Zero values are the defaults.
type Options struct {
	// SiteDir is the site's source directory, watched for changes. Required.
	SiteDir string
	// OutDir is where Builder writes; the server loads it into memory after
	// each build. Required.
	OutDir string
	// Builder builds SiteDir into OutDir. Required.
	Builder Builder
	// AllowedHosts are extra Host header names accepted besides localhost
	// and IP literals (for a LAN name or a tunnel). Default none.
	AllowedHosts []string
	// Watch tunes the watcher (Debounce, Poll, Ignore, ...). Root and
	// OutDir are taken from SiteDir and OutDir.
	Watch WatchOptions
	// OnRebuild is called after every build, including the first, from the
	// rebuild goroutine. Default: nothing.
	OnRebuild func(Rebuild)
	// Logger receives diagnostics. Default: discard.
	Logger *slog.Logger
}

// Rebuild describes one build, for the terminal.
type Rebuild struct {
	// Time is when the build started.
	Time time.Time
	// Initial is set for the first build.
	Initial bool
	// Changed lists the changed sources (relative to the site root).
	Changed []string
	// All is set when everything was rebuilt because events were lost.
	All bool
	// Duration is how long the build and loading its output took.
	Duration time.Duration
	// Files is the number of files now served.
	Files int
	// Action is what browsers were told to do.
	Action Action
	// Clients is the number of connected browser tabs told.
	Clients int
	// Err is the build error; Messages its positions when it has them.
	Err      error
	Messages []Message
}

// String is the terminal line for r, followed by one indented line per
// build error.
func (r Rebuild) String() string {
	var b strings.Builder
	b.WriteString(r.Time.Format("15:04:05"))
	b.WriteString(" ")
	switch {
	case r.Initial:
		b.WriteString("initial build")
	case r.All:
		b.WriteString("file events lost: full rebuild")
	default:
		const show = 3
		b.WriteString(strings.Join(r.Changed[:min(len(r.Changed), show)], ", "))
		if n := len(r.Changed) - show; n > 0 {
			fmt.Fprintf(&b, " and %d more", n)
		}
	}
	d := r.Duration.Round(100 * time.Microsecond)
	if r.Err != nil {
		fmt.Fprintf(&b, ": build failed in %v", d)
		if len(r.Messages) == 0 {
			fmt.Fprintf(&b, "\n  %v", r.Err)
		}
		for _, m := range r.Messages {
			fmt.Fprintf(&b, "\n  %s", m)
		}
		return b.String()
	}
	fmt.Fprintf(&b, ": built in %v, %d files", d, r.Files)
	tabs := "tabs"
	if r.Clients == 1 {
		tabs = "tab"
	}
	switch r.Action {
	case ActionNone:
		if !r.Initial {
			b.WriteString(", output unchanged")
		}
	case ActionCSS:
		fmt.Fprintf(&b, ", styles swapped in %d %s", r.Clients, tabs)
	case ActionReload:
		if !r.Initial {
			fmt.Fprintf(&b, ", reloaded %d %s", r.Clients, tabs)
		}
	}
	return b.String()
}

// Server is a running development server.
type Server struct {
	siteDir      string
	outDir       string
	builder      Builder
	allowedHosts []string
	watchOpts    WatchOptions
	onRebuild    func(Rebuild)
	log          *slog.Logger
	hub          *hub

	mu   sync.RWMutex
	site *site

	failed bool // the last build failed; touched only by the rebuild loop
}

// New checks opts and returns a server ready to Run.
func New(opts Options) (*Server, error) {
	if opts.SiteDir == "" {
		return nil, errors.New("dev server: no site directory")
	}
	if opts.OutDir == "" {
		return nil, errors.New("dev server: no output directory")
	}
	if opts.Builder == nil {
		return nil, errors.New("dev server: no builder")
	}
	if st, err := os.Stat(opts.SiteDir); err != nil {
		return nil, fmt.Errorf("site dir: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("site dir %s: not a directory", opts.SiteDir)
	}
	if _, err := newIgnoreRules(opts.SiteDir, opts.OutDir, opts.Watch.Ignore); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		siteDir: opts.SiteDir, outDir: opts.OutDir, builder: opts.Builder,
		watchOpts: opts.Watch, onRebuild: opts.OnRebuild, log: log, hub: newHub(),
	}
	for _, h := range opts.AllowedHosts {
		s.allowedHosts = append(s.allowedHosts, strings.ToLower(hostOnly(h)))
	}
	s.watchOpts.Root, s.watchOpts.OutDir = opts.SiteDir, opts.OutDir
	if s.watchOpts.Logger == nil {
		s.watchOpts.Logger = log
	}
	return s, nil
}

// Listen opens a TCP listener on addr, explaining the usual failures.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("listen on %s: the port is taken (another dev server?): stop it or pick another with --addr: %w", addr, err)
		}
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

// Handler is the server's HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s }

func (s *Server) current() *site {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.site
}

// Run builds the site, serves it on ln and rebuilds on every change until
// ctx ends; then it closes the event streams, shuts the HTTP server down
// and returns nil. It returns an error only when it cannot start (the site
// cannot be watched) or the listener fails.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	defer ln.Close()
	if err := os.MkdirAll(s.outDir, 0o755); err != nil {
		return fmt.Errorf("create output dir: %w", err)
	}

	// Watch before the first build so no change made during it is missed.
	w, err := NewWatcher(ctx, s.watchOpts)
	if err != nil {
		return err
	}
	defer w.Close()

	s.rebuild(ctx, Batch{}, true)

	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-serveErr:
			runErr = fmt.Errorf("serve: %w", err)
			break loop
		case b, ok := <-w.Batches():
			if !ok {
				if err := w.Err(); err != nil {
					runErr = err
				}
				break loop
			}
			s.rebuild(ctx, b, false)
		}
	}
	s.hub.close()
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil && runErr == nil {
		runErr = fmt.Errorf("shut down: %w", err)
	}
	return runErr
}

// loadOutput reads the output directory into memory. It opens the
// directory anew each time because a builder may replace it whole.
func (s *Server) loadOutput(m *manifest.Manifest, prev *site) (*site, error) {
	root, err := os.OpenRoot(s.outDir)
	if err != nil {
		return nil, fmt.Errorf("open output dir: %w", err)
	}
	defer root.Close()
	return loadSite(root, m, prev)
}

// rebuild runs one build, loads its output and tells the browsers.
func (s *Server) rebuild(ctx context.Context, b Batch, initial bool) {
	r := Rebuild{Time: time.Now(), Initial: initial, Changed: b.Paths, All: b.All}
	var changed []string
	if !b.All {
		changed = b.Paths
	}
	m, err := s.builder.Build(ctx, changed...)
	prev := s.current()
	var next *site
	if err == nil {
		next, err = s.loadOutput(m, prev)
	}
	r.Duration = time.Since(r.Time)
	if ctx.Err() != nil {
		return // shutting down; the build was cut short on purpose
	}
	if err != nil {
		r.Err = err
		r.Messages = s.messagesOf(err)
		r.Action = ActionError
		buildID := ""
		if prev != nil {
			buildID = prev.buildID
		}
		msg := message{Type: "error", BuildID: buildID, Errors: r.Messages}
		s.hub.setState(msg)
		s.failed = true
		r.Clients = s.hub.broadcast(msg)
		if prev != nil {
			r.Files = len(prev.files)
		}
		s.report(r)
		return
	}
	s.mu.Lock()
	s.site = next
	s.mu.Unlock()
	r.Files = len(next.files)
	var oldManifest *manifest.Manifest
	if prev != nil {
		oldManifest = prev.manifest
	}
	// The first build has no predecessor, so plan says reload; no stream is
	// open yet, and a tab left open across a restart catches up through the
	// build ID in the hello it gets on reconnecting.
	action, sheets := plan(b, oldManifest, m)
	s.hub.setState(message{BuildID: next.buildID})
	switch action {
	case ActionCSS:
		r.Clients = s.hub.broadcast(message{Type: "css", BuildID: next.buildID, Sheets: sheets})
	case ActionReload:
		r.Clients = s.hub.broadcast(message{Type: "reload", BuildID: next.buildID})
	case ActionNone:
		// A fix that restores the last good output byte for byte changes
		// nothing to load, but the overlay must still go.
		if s.failed {
			r.Clients = s.hub.broadcast(message{Type: "hello", BuildID: next.buildID})
		}
	}
	s.failed = false
	r.Action = action
	s.report(r)
}

func (s *Server) report(r Rebuild) {
	if r.Err != nil {
		s.log.Debug("build failed", "err", r.Err)
	}
	if s.onRebuild != nil {
		s.onRebuild(r)
	}
}

// messagesOf turns a build error into overlay messages, adding the source
// line of each located message so the overlay can point at the column.
func (s *Server) messagesOf(err error) []Message {
	var be *bundler.BuildError
	if !errors.As(err, &be) || len(be.Messages) == 0 {
		return []Message{{Text: err.Error()}}
	}
	out := make([]Message, len(be.Messages))
	for i, m := range be.Messages {
		out[i] = Message{File: m.File, Line: m.Line, Column: m.Column, Text: m.Text}
		if m.File != "" && m.Line > 0 {
			out[i].LineText = sourceLine(s.siteDir, m.File, m.Line)
		}
	}
	return out
}

// sourceLine returns line n (1-based) of the site file rel, or "" when it
// cannot be read or is too long to be worth showing.
func sourceLine(siteDir, rel string, n int) string {
	root, err := os.OpenRoot(siteDir)
	if err != nil {
		return ""
	}
	defer root.Close()
	f, err := root.Open(filepath.FromSlash(rel))
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for i := 1; sc.Scan(); i++ {
		if i == n {
			if line := sc.Text(); len(line) <= 500 {
				return line
			}
			return ""
		}
	}
	return ""
}
