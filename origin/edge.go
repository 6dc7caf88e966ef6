package origin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// Purger drops every response cached at the edge (the CDN) under any of
// tags. The API calls it after each committed write with the document's
// tag and its collection's tag.
//
// XkeyPurger speaks Varnish's xkey vmod. Other edges plug in behind the same
// interface:
//   - Fastly: POST https://api.fastly.com/service/{id}/purge with the tags
//     in a Surrogate-Key header (up to 256 keys a request) and the API token
//     in Fastly-Key; responses already carry Surrogate-Key.
//   - CloudFront has no tag purge of its own: map tags to the paths that
//     carry them (a tag → paths index the origin keeps) and send one
//     CreateInvalidation per batch, or front it with a Lambda@Edge or
//     CloudFront KeyValueStore scheme that versions the cache key per tag.
type Purger interface {
	Purge(ctx context.Context, tags []string) error
}

// XkeyPurger purges tags on a Varnish edge running the xkey vmod: one
// PURGE request with the tags, space-separated, in an xkey-purge header,
// which the edge's VCL hands to xkey.purge (see internal/testsvc's
// XkeyVCL). The edge must allow this origin to PURGE (an ACL).
type XkeyPurger struct {
	url    string
	client *http.Client
}

var _ Purger = (*XkeyPurger)(nil)

// NewXkeyPurger purges through the Varnish edge at baseURL (such as
// http://127.0.0.1:6081/). client nil means http.DefaultClient; give it a
// Timeout, or pass a ctx with a deadline to Purge.
func NewXkeyPurger(baseURL string, client *http.Client) *XkeyPurger {
	if client == nil {
		client = http.DefaultClient
	}
	if !strings.HasSuffix(baseURL, "/") {
		baseURL += "/"
	}
	return &XkeyPurger{url: baseURL, client: client}
}

// ErrPurgeRejected means the edge answered a purge with a status other
// than 2xx (an ACL refusing this origin answers 405 in the usual VCL).
var ErrPurgeRejected = errors.New("edge rejected the purge")

// Purge sends one PURGE request for all tags. An edge answer other than 2xx
// is an error wrapping ErrPurgeRejected.
func (p *XkeyPurger) Purge(ctx context.Context, tags []string) error {
	if len(tags) == 0 {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, "PURGE", p.url, nil)
	if err != nil {
		return fmt.Errorf("purge tags at %s: %w", p.url, err)
	}
	req.Header.Set("xkey-purge", strings.Join(tags, " "))
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("purge tags at %s: %w", p.url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("purge tags at %s: %w: %s %s: check the edge's VCL allows PURGE from this origin",
			p.url, ErrPurgeRejected, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// edgePurge runs the API's purges: one attempt inline, so that in the
// normal case the edge no longer holds the old version once the write's
// response is sent; failures are retried in the background with
// exponential backoff. A purge never fails the write: the write has already
// committed, and the response's s-maxage bounds how long a missed purge
// leaves the old version at the edge.
type edgePurge struct {
	p        Purger
	log      *slog.Logger
	timeout  time.Duration
	retryFor time.Duration
	results  *prometheus.CounterVec // result = ok | retried | failed

	mu       sync.Mutex
	closed   bool
	wg       sync.WaitGroup
	stop     chan struct{}
	stopOnce sync.Once
	pending  int
	max      int
}

func (e *edgePurge) purge(ctx context.Context, tags []string) {
	if e == nil || e.p == nil {
		return
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.timeout)
	err := e.p.Purge(actx, tags)
	cancel()
	if err == nil {
		e.results.WithLabelValues("ok").Inc()
		return
	}
	e.log.Warn("edge purge failed; retrying in the background", "tags", tags, "err", err)
	e.mu.Lock()
	if e.closed || e.pending >= e.max {
		e.mu.Unlock()
		e.results.WithLabelValues("failed").Inc()
		e.log.Error("edge purge dropped: the retry queue is full or closed; the old version stays at the edge until its s-maxage ends", "tags", tags)
		return
	}
	e.pending++
	e.wg.Add(1)
	e.mu.Unlock()
	// The retry outlives the request but not the API: it is cancelled by
	// Close, and keeps the request's values (trace IDs) for its logs.
	rctx, rcancel := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		defer e.wg.Done()
		defer rcancel()
		go func() {
			select {
			case <-e.stop:
				rcancel()
			case <-rctx.Done():
			}
		}()
		b := backoff.NewExponentialBackOff()
		b.InitialInterval = 100 * time.Millisecond
		b.MaxInterval = 5 * time.Second
		attempts := 0
		_, err := backoff.Retry(rctx, func() (struct{}, error) {
			attempts++
			actx, cancel := context.WithTimeout(rctx, e.timeout)
			defer cancel()
			return struct{}{}, e.p.Purge(actx, tags)
		}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(e.retryFor))
		e.mu.Lock()
		e.pending--
		e.mu.Unlock()
		if err != nil {
			e.results.WithLabelValues("failed").Inc()
			e.log.Error("edge purge gave up; the old version stays at the edge until its s-maxage ends",
				"tags", tags, "attempts", attempts, "err", err)
			return
		}
		e.results.WithLabelValues("retried").Inc()
		e.log.Info("edge purge succeeded after retrying", "tags", tags, "attempts", attempts)
	}()
}

// close waits for the background retries to end; when ctx ends first it
// cancels them (each logs and counts its purge as failed) and waits for
// that.
func (e *edgePurge) close(ctx context.Context) error {
	if e == nil || e.p == nil {
		return nil
	}
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		e.stopOnce.Do(func() { close(e.stop) })
		<-done
		return fmt.Errorf("wait for edge purge retries: %w", ctx.Err())
	}
}
