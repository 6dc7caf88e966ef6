package origin

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/assetctl/assetctl/shardedapi"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
)

// ServerOptions configure a Server. The zero value of every field selects
// its documented default.
type ServerOptions struct {
	// Addr is where ListenAndServe listens. Default ":8080".
	Addr string
	// ReadHeaderTimeout bounds reading a request's headers (slowloris).
	// Default 5 seconds.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request. Default 30 seconds.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response. Default 60 seconds.
	WriteTimeout time.Duration
	// IdleTimeout bounds an idle keep-alive connection. Default 120 seconds.
	IdleTimeout time.Duration
	// MaxHeaderBytes caps a request's headers. Default 64 KiB.
	MaxHeaderBytes int
	// MaxBodyBytes caps every request body (http.MaxBytesReader); handlers
	// see an *http.MaxBytesError beyond it. Default 1 MiB.
	MaxBodyBytes int64

	// CDNURL is the CDN base URL the pages' assets come from; the CSP
	// allows it for scripts, styles, images, fonts and fetches. Default
	// none: only the site itself and nonce-carrying tags.
	CDNURL string
	// HSTSMaxAge is the Strict-Transport-Security max-age sent over TLS.
	// Default 2 years; negative: no HSTS header.
	HSTSMaxAge time.Duration

	// TLSCertFile and TLSKeyFile make the server speak HTTPS (HTTP/2
	// negotiated by ALPN). Default none: plain HTTP/1.1.
	TLSCertFile, TLSKeyFile string
	// TLSConfig is used for HTTPS instead of (or with) the files. Default
	// nil.
	TLSConfig *tls.Config

	// Dependencies are what /readyz checks. Default none.
	Dependencies []Dependency
	// CheckTimeout bounds each dependency check of /readyz. Default 2
	// seconds.
	CheckTimeout time.Duration

	// DrainDelay is how long /readyz answers 503 before the server stops
	// accepting requests, so load balancers stop sending new ones first.
	// Default 0: shut down at once (fine without a load balancer).
	DrainDelay time.Duration
	// ShutdownTimeout bounds how long in-flight requests may take to
	// finish after shutdown begins. Default 30 seconds.
	ShutdownTimeout time.Duration

	// Logger receives the access log (one Info line a request) and the
	// server's logs. Default: discarded.
	Logger *slog.Logger
	// DisableAccessLog turns the access log off. Default false.
	DisableAccessLog bool
	// Registerer receives the request metrics (origin_http_requests_total,
	// origin_http_request_duration_seconds). Default: kept but not
	// registered.
	Registerer prometheus.Registerer
	// Gatherer is what /metrics exposes. Default nil: no /metrics route.
	// Usually the same *prometheus.Registry as Registerer.
	Gatherer prometheus.Gatherer
}

// Checker reports whether one dependency can be reached.
type Checker interface {
	Check(ctx context.Context) error
}

// CheckerFunc adapts a function to Checker.
type CheckerFunc func(ctx context.Context) error

// Check calls f.
func (f CheckerFunc) Check(ctx context.Context) error { return f(ctx) }

// Dependency is one thing /readyz checks.
type Dependency struct {
	// Name is its key in /readyz's JSON, such as "catalog", "shard:s0",
	// "redis".
	Name string
	// Critical makes its failure turn readiness "down" (503), taking the
	// instance out of the load balancer. Default false: its failure makes
	// readiness "degraded" (still 200), right for dependencies every
	// instance shares, where leaving the pool would not help.
	Critical bool
	Checker  Checker
}

// ClusterDependencies are the catalog and each shard of c, for /readyz.
// None is critical: a shard that is down fails only its own documents.
func ClusterDependencies(c *shardedapi.Cluster) []Dependency {
	deps := []Dependency{{Name: "catalog", Checker: CheckerFunc(c.Catalog().Ping)}}
	for _, s := range c.Shards() {
		deps = append(deps, Dependency{Name: "shard:" + s.Name(), Checker: CheckerFunc(s.Pool().Ping)})
	}
	return deps
}

// RedisDependency is the cache's Redis, for /readyz. It is not critical:
// without Redis the origin is slower, never wrong.
func RedisDependency(rdb redis.UniversalClient) Dependency {
	return Dependency{Name: "redis", Checker: CheckerFunc(func(ctx context.Context) error {
		return rdb.Ping(ctx).Err()
	})}
}

// Server is an http.Server with production hygiene around a handler:
// timeouts, a body limit, security headers with a per-request CSP nonce,
// an access log, per-route metrics, /healthz, /readyz and /metrics, and a
// graceful shutdown in which readiness goes down first.
type Server struct {
	o        ServerOptions
	handler  http.Handler
	chain    http.Handler
	sec      *securityHeaders
	log      *slog.Logger
	draining atomic.Bool
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	metrics  http.Handler
	// children caches the label-resolved metrics of each (route, method,
	// status): resolving labels validates and hashes every value, which
	// showed up in the hot path's profile. Keys are bounded: routes are
	// patterns, methods are methodLabel's, statuses are 100-999. The map
	// is copied on write and never changed once published, so a lookup is
	// one atomic load and a map read: no lock, and no boxing of the key
	// into an interface (which sync.Map did, one allocation per request).
	children   atomic.Pointer[map[metricKey]*routeMetrics]
	childrenMu sync.Mutex // serializes the copy-on-write
}

type metricKey struct {
	route, method string
	status        int
}

type routeMetrics struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

func (s *Server) routeMetrics(route, method string, status int) *routeMetrics {
	k := metricKey{route, method, status}
	if p := s.children.Load(); p != nil {
		if m, ok := (*p)[k]; ok {
			return m
		}
	}
	s.childrenMu.Lock()
	defer s.childrenMu.Unlock()
	old := s.children.Load()
	if old != nil {
		if m, ok := (*old)[k]; ok {
			return m
		}
	}
	m := &routeMetrics{
		requests: s.requests.WithLabelValues(route, method, strconv.Itoa(status)),
		duration: s.duration.WithLabelValues(route, method),
	}
	next := make(map[metricKey]*routeMetrics, 1+lenOf(old))
	if old != nil {
		maps.Copy(next, *old)
	}
	next[k] = m
	s.children.Store(&next)
	return m
}

func lenOf(p *map[metricKey]*routeMetrics) int {
	if p == nil {
		return 0
	}
	return len(*p)
}

// NewServer validates o and wraps handler (the site: the API, pages).
func NewServer(handler http.Handler, o ServerOptions) (*Server, error) {
	if handler == nil {
		return nil, errors.New("new server: no handler")
	}
	if o.Addr == "" {
		o.Addr = ":8080"
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.ReadHeaderTimeout, 5*time.Second)
	def(&o.ReadTimeout, 30*time.Second)
	def(&o.WriteTimeout, 60*time.Second)
	def(&o.IdleTimeout, 120*time.Second)
	def(&o.CheckTimeout, 2*time.Second)
	def(&o.ShutdownTimeout, 30*time.Second)
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = 64 << 10
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if (o.TLSCertFile == "") != (o.TLSKeyFile == "") {
		return nil, errors.New("new server: TLS needs both a certificate file and a key file")
	}
	for _, d := range o.Dependencies {
		if d.Name == "" || d.Checker == nil {
			return nil, fmt.Errorf("new server: dependency %q: needs a name and a checker", d.Name)
		}
	}
	sec, err := newSecurityHeaders(o.CDNURL, o.HSTSMaxAge)
	if err != nil {
		return nil, fmt.Errorf("new server: %w", err)
	}
	s := &Server{o: o, handler: handler, sec: sec, log: o.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "origin_http_requests_total",
		Help: "HTTP requests answered, by route pattern, method and status code.",
	}, []string{"route", "method", "code"})
	s.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "origin_http_request_duration_seconds",
		Help:    "Time to answer an HTTP request, by route pattern and method.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route", "method"})
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{s.requests, s.duration} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("new server: register metrics: %w (one Server per registry)", err)
			}
		}
	}
	if o.Gatherer != nil {
		s.metrics = promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{ErrorLog: slogPrinter{s.log}})
	}
	s.chain = http.HandlerFunc(s.serve)
	return s, nil
}

// slogPrinter lets promhttp log through slog.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Error("serve metrics", "err", fmt.Sprint(v...)) }

// Handler is the whole chain the server runs (middleware, the operational
// routes and the wrapped handler), for tests and for embedding in another
// server.
func (s *Server) Handler() http.Handler { return s.chain }

// Ready reports whether /readyz would answer at all (false once shutdown
// has begun).
func (s *Server) Ready() bool { return !s.draining.Load() }

// methodLabel keeps the method label's values bounded.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}

// serve is the middleware chain, written out as one function: one
// context value, one response recorder, then the routes.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	// One allocation holds the recorder and the request state.
	rec := &recorder{ResponseWriter: w, srv: s}
	st := &rec.state
	rec.st = st
	rec.ctx = stateCtx{Context: r.Context(), st: st}
	r = r.WithContext(&rec.ctx)
	rec.r = r
	if r.Body != nil && r.Body != http.NoBody {
		// The original writer, so net/http learns of an oversized body
		// and closes the connection instead of reading the rest.
		r.Body = http.MaxBytesReader(w, r.Body, s.o.MaxBodyBytes)
	}
	switch r.URL.Path {
	case "/healthz":
		st.route = "/healthz"
		s.healthz(rec, r)
	case "/readyz":
		st.route = "/readyz"
		s.readyz(rec, r)
	case "/metrics":
		if s.metrics != nil {
			st.route = "/metrics"
			s.metrics.ServeHTTP(rec, r)
			break
		}
		fallthrough
	default:
		s.handler.ServeHTTP(rec, r)
	}
	route := st.route
	if route == "" {
		route = r.Pattern
	}
	if route == "" {
		route = "other"
	}
	status := rec.status
	if status == 0 {
		// The handler wrote nothing: net/http sends 200 with our headers.
		status = http.StatusOK
		rec.finalHeaders()
	}
	elapsed := time.Since(start)
	method := methodLabel(r.Method)
	m := s.routeMetrics(route, method, status)
	m.requests.Inc()
	m.duration.Observe(elapsed.Seconds())
	if !s.o.DisableAccessLog && s.log.Enabled(r.Context(), slog.LevelInfo) {
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("route", route),
			slog.Int("status", status), slog.Int64("bytes", rec.bytes), slog.Duration("duration", elapsed),
			slog.String("remote", r.RemoteAddr), slog.String("proto", r.Proto))
	}
}

// recorder notes the status and size of a response for the log and
// metrics. 1xx responses (103 Early Hints) pass through without being
// taken as the final status.
//
// It also adds the security headers just before the final headers go
// out, so the CSP carries a nonce only if the handler asked for one.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	srv    *Server
	st     *reqState
	r      *http.Request
	state  reqState
	ctx    stateCtx
}

func (rw *recorder) finalHeaders() {
	if !rw.st.headersDone {
		rw.st.headersDone = true
		rw.srv.sec.set(rw.ResponseWriter.Header(), rw.r, rw.st.nonce)
	}
}

func (rw *recorder) WriteHeader(code int) {
	if rw.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		rw.status = code
		rw.finalHeaders()
	}
	rw.ResponseWriter.WriteHeader(code)
}

func (rw *recorder) Write(b []byte) (int, error) {
	if rw.status == 0 {
		rw.status = http.StatusOK
		rw.finalHeaders()
	}
	n, err := rw.ResponseWriter.Write(b)
	rw.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush, deadlines and the
// rest through the recorder.
func (rw *recorder) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

// Flush keeps streaming handlers that type-assert http.Flusher working.
func (rw *recorder) Flush() { _ = http.NewResponseController(rw.ResponseWriter).Flush() }

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "up"})
}

// CheckResult is one dependency in /readyz's JSON.
type CheckResult struct {
	Status    string  `json:"status"` // up | down
	Critical  bool    `json:"critical,omitempty"`
	LatencyMS float64 `json:"latency_ms"`
	Error     string  `json:"error,omitempty"`
}

// Readiness is /readyz's JSON.
type Readiness struct {
	// Status is up (every dependency answers), degraded (a non-critical
	// one does not: still 200) or down (shutting down, or a critical one
	// does not: 503).
	Status       string                 `json:"status"`
	ShuttingDown bool                   `json:"shutting_down,omitempty"`
	Checks       map[string]CheckResult `json:"checks"`
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	res := s.Readiness(r.Context())
	code := http.StatusOK
	if res.Status == "down" {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, res)
}

// Readiness checks every dependency concurrently, each within
// CheckTimeout.
func (s *Server) Readiness(ctx context.Context) Readiness {
	res := Readiness{Status: "up", Checks: make(map[string]CheckResult, len(s.o.Dependencies))}
	if s.draining.Load() {
		res.Status, res.ShuttingDown = "down", true
		return res
	}
	results := make([]CheckResult, len(s.o.Dependencies))
	var wg sync.WaitGroup
	for i, d := range s.o.Dependencies {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, s.o.CheckTimeout)
			defer cancel()
			start := time.Now()
			err := d.Checker.Check(cctx)
			cr := CheckResult{Status: "up", Critical: d.Critical, LatencyMS: float64(time.Since(start).Microseconds()) / 1000}
			if err != nil {
				cr.Status, cr.Error = "down", err.Error()
			}
			results[i] = cr
		})
	}
	wg.Wait()
	for i, d := range s.o.Dependencies {
		cr := results[i]
		res.Checks[d.Name] = cr
		if cr.Status == "down" {
			if d.Critical {
				res.Status = "down"
			} else if res.Status == "up" {
				res.Status = "degraded"
			}
		}
	}
	return res
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, errorf(http.StatusInternalServerError, "encode response: "+err.Error()))
		return
	}
	h := w.Header()
	h["Content-Type"] = jsonType
	h["Cache-Control"] = noStore
	h["Content-Length"] = []string{strconv.Itoa(len(b) + 1)}
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

func (s *Server) httpServer(ctx context.Context) *http.Server {
	return &http.Server{
		Addr:              s.o.Addr,
		Handler:           s.chain,
		ReadHeaderTimeout: s.o.ReadHeaderTimeout,
		ReadTimeout:       s.o.ReadTimeout,
		WriteTimeout:      s.o.WriteTimeout,
		IdleTimeout:       s.o.IdleTimeout,
		MaxHeaderBytes:    s.o.MaxHeaderBytes,
		TLSConfig:         s.o.TLSConfig,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		// Requests keep ctx's values but are not cancelled with it: on
		// shutdown they finish (within ShutdownTimeout).
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
}

// ListenAndServe listens on Addr and serves until ctx ends; see Serve.
func (s *Server) ListenAndServe(ctx context.Context) error {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", s.o.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w: choose another address or stop what uses it", s.o.Addr, err)
	}
	return s.Serve(ctx, l)
}

// Serve serves on l until ctx ends, then shuts down gracefully: /readyz
// answers 503 at once, after DrainDelay the server stops accepting
// connections and waits (up to ShutdownTimeout) for in-flight requests to
// finish. It returns nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	srv := s.httpServer(ctx)
	tlsOn := s.o.TLSConfig != nil || s.o.TLSCertFile != ""
	errc := make(chan error, 1)
	go func() {
		if tlsOn {
			errc <- srv.ServeTLS(l, s.o.TLSCertFile, s.o.TLSKeyFile)
		} else {
			errc <- srv.Serve(l)
		}
	}()
	s.log.Info("serving", "addr", l.Addr().String(), "tls", tlsOn)
	select {
	case err := <-errc:
		return fmt.Errorf("serve on %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	s.draining.Store(true)
	s.log.Info("shutting down: readiness is down", "drain_delay", s.o.DrainDelay)
	if s.o.DrainDelay > 0 {
		t := time.NewTimer(s.o.DrainDelay)
		<-t.C
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.o.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("serve on %s: %w", l.Addr(), serr)
	}
	if err != nil {
		return fmt.Errorf("shut down: in-flight requests did not finish within %v: %w", s.o.ShutdownTimeout, err)
	}
	s.log.Info("shut down cleanly")
	return nil
}
