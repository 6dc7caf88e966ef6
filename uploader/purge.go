package uploader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"golang.org/x/sync/errgroup"
)

// PurgeOptions configures NewPurge.
type PurgeOptions struct {
	// Method is the HTTP method of a purge request. Default "PURGE"
	// (Varnish, Fastly, Nginx's cache_purge).
	Method string
	// Header is added to every purge request, for example a Fastly-Key.
	// Default: none.
	Header http.Header
	// Host overrides the Host header, for an edge reached by an address
	// other than the site's public name (Varnish purges by Host and URL).
	// Default: the base URL's host.
	Host string
	// OriginPath is the object-key prefix the base URL serves: "" or "/"
	// when the base URL serves the bucket root (a purge of bucket path
	// "/www/index.html" goes to BASE/www/index.html), "/www" when it serves
	// the keys under www/ (the purge goes to BASE/index.html). Default: the
	// bucket root.
	OriginPath string
	// Concurrency is how many purge requests are in flight at once.
	// Default 8.
	Concurrency int
	// MaxTries is how many times one path is tried when the edge answers
	// 5xx or 429 or the connection fails. Default 5. A 429's Retry-After
	// is honoured up to 30s.
	MaxTries uint
	// RetryInterval is the first delay between tries; it doubles, with
	// jitter, up to 10s. Default 200ms.
	RetryInterval time.Duration
	// Client sends the requests. Default: an http.Client with a 30s
	// timeout.
	Client *http.Client
	// Logger receives retries at Info and each purge at Debug. Default:
	// discard.
	Logger *slog.Logger
}

// Purge invalidates paths at a Varnish- or Fastly-style edge by sending an
// HTTP PURGE request for each URL. It is safe for concurrent use.
type Purge struct {
	base        *url.URL
	method      string
	header      http.Header
	host        string
	concurrency int
	maxTries    uint
	interval    time.Duration
	client      *http.Client
	log         *slog.Logger
	originPath  string
}

var (
	_ Invalidator  = (*Purge)(nil)
	_ ViewerMapper = (*Purge)(nil)
)

// PurgeError is an edge's refusal of a purge request (a 4xx answer, or a
// 5xx after every retry).
type PurgeError struct {
	Method     string
	URL        string
	StatusCode int
	Status     string // "405 Not allowed"
	Body       string // the start of the response body
}

func (e *PurgeError) Error() string {
	msg := fmt.Sprintf("%s %s: edge answered %s", e.Method, e.URL, e.Status)
	switch {
	case e.StatusCode == http.StatusMethodNotAllowed || e.StatusCode == http.StatusForbidden || e.StatusCode == http.StatusUnauthorized:
		msg += " (check that the edge accepts " + e.Method + " from this host, and any key header)"
	case e.StatusCode == http.StatusNotImplemented:
		msg += " (the server does not know " + e.Method + ": is --purge the edge's URL rather than the origin's?)"
	}
	return msg
}

// NewPurge returns an invalidator that purges base URL + viewer path for
// each bucket path it is given (base "http://127.0.0.1:6081/site", origin
// path "/www" and bucket path "/www/docs/" purge
// http://127.0.0.1:6081/site/docs/).
func NewPurge(baseURL string, opts PurgeOptions) (*Purge, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("purge URL %q: %w", baseURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("purge URL %q: want http:// or https:// with a host, such as http://127.0.0.1:6081", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("purge URL %q: want no query or fragment", baseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	p := &Purge{
		base:        u,
		method:      orDefault(opts.Method, "PURGE"),
		header:      opts.Header.Clone(),
		host:        opts.Host,
		concurrency: orDefault(opts.Concurrency, 8),
		maxTries:    orDefault(opts.MaxTries, 5),
		interval:    orDefault(opts.RetryInterval, 200*time.Millisecond),
		client:      opts.Client,
		log:         opts.Logger,
	}
	if p.originPath, err = CleanOriginPath(opts.OriginPath); err != nil {
		return nil, fmt.Errorf("purge: %w", err)
	}
	if p.concurrency < 0 {
		return nil, fmt.Errorf("purge: concurrency %d is negative", p.concurrency)
	}
	if p.client == nil {
		p.client = &http.Client{Timeout: 30 * time.Second}
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	return p, nil
}

// URL is the purge URL of path: the base URL joined with the escaped path.
func (p *Purge) URL(path string) string {
	u := *p.base
	u.Path = p.base.Path + path
	return u.String()
}

// ViewerPaths maps bucket paths to the paths purged under the base URL.
func (p *Purge) ViewerPaths(_ context.Context, bucketPaths []string) ([]CDNPaths, error) {
	source := "default"
	if p.originPath != "" {
		source = "flag"
	}
	return []CDNPaths{{CDN: p.base.Redacted(), OriginPath: p.originPath, Source: source, Paths: viewerPaths(p.originPath, bucketPaths)}}, nil
}

// Invalidate purges the viewer path of every bucket path (unescaped; they
// are escaped as a browser would; paths outside OriginPath are skipped) with bounded concurrency, retrying 5xx answers and
// connection errors with backoff. A 404 counts as purged: many purge VCLs
// answer it for an object that was not cached. Any other 4xx fails at once
// with a *PurgeError. Purges are synchronous, so the ID ("purge:N", N
// paths) needs no Wait; callerRef is not used.
func (p *Purge) Invalidate(ctx context.Context, paths []string, callerRef string) (string, error) {
	paths, err := cleanPaths(paths)
	if err != nil {
		return "", err
	}
	paths = viewerPaths(p.originPath, paths)
	if len(paths) == 0 {
		return "", nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(p.concurrency)
	for _, path := range paths {
		g.Go(func() error { return p.purge(gctx, p.URL(path)) })
	}
	if err := g.Wait(); err != nil {
		return "", fmt.Errorf("purge %d paths at %s: %w", len(paths), p.base.Redacted(), err)
	}
	return "purge:" + strconv.Itoa(len(paths)), nil
}

func (p *Purge) purge(ctx context.Context, target string) error {
	op := func() (struct{}, error) {
		req, err := http.NewRequestWithContext(ctx, p.method, target, nil)
		if err != nil {
			return struct{}{}, backoff.Permanent(fmt.Errorf("%s %s: %w", p.method, target, err))
		}
		for k, vs := range p.header {
			req.Header[k] = vs
		}
		if p.host != "" {
			req.Host = p.host
		}
		resp, err := p.client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return struct{}{}, backoff.Permanent(err)
			}
			return struct{}{}, err // connection refused or reset: retry
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		_, _ = io.Copy(io.Discard, resp.Body) // reuse the connection
		resp.Body.Close()
		code := resp.StatusCode
		if code/100 == 2 || code == http.StatusNotFound {
			p.log.Debug("purged", "url", target, "status", code)
			return struct{}{}, nil
		}
		perr := &PurgeError{Method: p.method, URL: target, StatusCode: code, Status: resp.Status, Body: strings.TrimSpace(string(body))}
		switch {
		case code == http.StatusTooManyRequests || code == http.StatusRequestTimeout:
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
				return struct{}{}, errors.Join(perr, backoff.RetryAfter(min(s, 30))) // never stall a deploy for long
			}
			return struct{}{}, perr
		case code >= 500:
			return struct{}{}, perr
		default:
			return struct{}{}, backoff.Permanent(perr)
		}
	}
	_, err := backoff.Retry(ctx, op,
		backoff.WithBackOff(&backoff.ExponentialBackOff{InitialInterval: p.interval, RandomizationFactor: 0.5, Multiplier: 2, MaxInterval: 10 * time.Second}),
		backoff.WithMaxTries(p.maxTries),
		backoff.WithMaxElapsedTime(0),
		backoff.WithNotify(func(err error, d time.Duration) {
			p.log.Info("purge failed; retrying", "url", target, "in", d, "err", err)
		}))
	if perr := (*PurgeError)(nil); errors.As(err, &perr) {
		return perr // without the Retry-After hint joined to it
	}
	return err
}

// Wait returns at once: a purge is done when Invalidate returns.
func (p *Purge) Wait(ctx context.Context, id string) error { return nil }
