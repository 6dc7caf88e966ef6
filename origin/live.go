package origin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// LiveOptions configure a Live. The zero value of every field is its
// default.
type LiveOptions struct {
	// CDNURL is the base URL the build was deployed to (see NewAssets).
	// Default: each manifest's BaseURL, else "/".
	CDNURL string
	// PollInterval is how often Run asks the source for a new manifest.
	// Default: 5s.
	PollInterval time.Duration
	// Check vets a new snapshot before it is swapped in, typically
	// (*Templates).Check; a snapshot it rejects is not served. Default: none.
	Check func(*Assets) error
	// Logger receives a line per swap and per rejected or unreachable
	// manifest. Default: discard.
	Logger *slog.Logger
	// Registerer gets the metrics (see NewLive). Default: none registered.
	Registerer prometheus.Registerer
}

// Live holds the current manifest snapshot and replaces it when the source
// has a new one. Readers never wait: Current is an atomic load.
type Live struct {
	src ManifestSource
	o   LiveOptions
	log *slog.Logger
	cur atomic.Pointer[Assets]

	mu       sync.Mutex // one reload at a time; guards etag
	etag     string     // of the newest version seen (good, or rejected)
	loadedAt atomic.Int64

	buildInfo *prometheus.GaugeVec
	failures  *prometheus.CounterVec
	failing   prometheus.Gauge
}

// NewLive loads the source's manifest once and fails if that does (no
// manifest, malformed, or rejected by o.Check): a server must not start
// without one. It registers on o.Registerer:
//
//	assetctl_origin_manifest_build_info{build_id}       1 for the build being served
//	assetctl_origin_manifest_age_seconds                 since that build was loaded
//	assetctl_origin_manifest_reload_failures_total{reason}  fetch, assets or check
//	assetctl_origin_manifest_reload_failing              1 while the newest version is not served
func NewLive(ctx context.Context, src ManifestSource, o LiveOptions) (*Live, error) {
	if src == nil {
		return nil, errors.New("new live manifest: nil source")
	}
	if o.PollInterval == 0 {
		o.PollInterval = 5 * time.Second
	}
	if o.PollInterval < 0 {
		return nil, fmt.Errorf("new live manifest: negative poll interval %s", o.PollInterval)
	}
	l := &Live{src: src, o: o, log: o.Logger}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	l.buildInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "assetctl_origin_manifest_build_info",
		Help: "The build ID of the manifest being served (value 1)."}, []string{"build_id"})
	l.failures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "assetctl_origin_manifest_reload_failures_total",
		Help: "Manifest reloads that kept the previous manifest, by reason: fetch (unreachable or malformed), assets (unusable manifest), check (templates use a name it lacks)."},
		[]string{"reason"})
	l.failing = prometheus.NewGauge(prometheus.GaugeOpts{Name: "assetctl_origin_manifest_reload_failing",
		Help: "1 while the last reload failed, so an older manifest than the source's is served."})
	age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "assetctl_origin_manifest_age_seconds",
		Help: "Seconds since the manifest being served was loaded."}, func() float64 {
		return time.Since(time.Unix(0, l.loadedAt.Load())).Seconds()
	})
	if err := l.reload(ctx, "", true); err != nil {
		return nil, fmt.Errorf("load manifest: %w", err)
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{l.buildInfo, l.failures, l.failing, age} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register manifest metrics: %w (one Live per registry)", err)
			}
		}
	}
	return l, nil
}

// SetCheck replaces LiveOptions.Check for the reloads that follow: the
// usual start-up loads the templates against Current, then hands their
// Check to the Live that gave it.
func (l *Live) SetCheck(check func(*Assets) error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.o.Check = check
}

// Current is the snapshot to render with. Handlers under Middleware use
// AssetsFrom instead, so a request keeps one snapshot throughout.
func (l *Live) Current() *Assets { return l.cur.Load() }

// Reload asks the source for its manifest now, unconditionally (so a
// version rejected earlier is tried again), and swaps it in if it is
// usable and passes Check. On failure the current snapshot stays; the
// error is logged, counted and returned. SIGHUP handlers call this.
func (l *Live) Reload(ctx context.Context) error {
	return l.reload(ctx, "", false)
}

// Run polls the source every PollInterval with the ETag of the newest
// version seen, until ctx ends. Failures are logged and counted; the last
// good snapshot keeps serving.
func (l *Live) Run(ctx context.Context) {
	tick := time.NewTicker(l.o.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			l.mu.Lock()
			etag := l.etag
			l.mu.Unlock()
			_ = l.reload(ctx, etag, false) // logged and counted inside
		}
	}
}

func (l *Live) reload(ctx context.Context, etag string, first bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	fail := func(reason string, newETag string, err error) error {
		if newETag != "" {
			// Seen and rejected: polls pass this ETag so an unchanged bad
			// version is not fetched and reported again every interval.
			l.etag = newETag
		}
		if !first {
			l.failures.WithLabelValues(reason).Inc()
			l.failing.Set(1)
			l.log.Warn("kept the previous manifest", "build", l.cur.Load().BuildID(), "reason", reason, "err", err)
		}
		return err
	}
	m, newETag, changed, err := l.src.Fetch(ctx, etag)
	if err != nil {
		return fail("fetch", newETag, err)
	}
	if !changed {
		return nil
	}
	a, err := NewAssets(m, l.o.CDNURL)
	if err != nil {
		return fail("assets", newETag, err)
	}
	if l.o.Check != nil {
		if err := l.o.Check(a); err != nil {
			return fail("check", newETag, fmt.Errorf("build %s: %w", a.BuildID(), err))
		}
	}
	l.etag = newETag
	l.failing.Set(0)
	old := l.cur.Load()
	if old != nil && old.BuildID() == a.BuildID() && old.base == a.base {
		return nil // same build (a forced reload): keep the snapshot and its template clones
	}
	l.cur.Store(a)
	l.loadedAt.Store(time.Now().UnixNano())
	l.buildInfo.Reset()
	l.buildInfo.WithLabelValues(a.BuildID()).Set(1)
	if old != nil {
		l.log.Info("serving a new manifest", "build", a.BuildID(), "previous", old.BuildID())
	}
	return nil
}

type assetsKey struct{}

// Middleware pins the current snapshot into each request's context (read
// it with AssetsFrom) and sets the X-Build-ID response header, so a
// request renders every URL from the manifest it started with, even if a
// new one is swapped in meanwhile, and a client can tell it is behind.
func (l *Live) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := l.cur.Load()
		w.Header().Set("X-Build-ID", a.BuildID())
		next.ServeHTTP(w, r.WithContext(WithAssets(r.Context(), a)))
	})
}

// WithAssets returns ctx carrying a, for AssetsFrom.
func WithAssets(ctx context.Context, a *Assets) context.Context {
	return context.WithValue(ctx, assetsKey{}, a)
}

// AssetsFrom returns the snapshot Middleware pinned for the request, or
// nil outside it.
func AssetsFrom(ctx context.Context) *Assets {
	a, _ := ctx.Value(assetsKey{}).(*Assets)
	return a
}
