package testsvc

import (
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"
)

// FaultOptions say what a FaultProxy does to the requests it forwards.
// Probabilities are per request, in [0, 1]; the zero value forwards all.
type FaultOptions struct {
	// SlowDown answers 503 SlowDown (S3's throttling reply) without forwarding.
	SlowDown float64
	// Reset closes the client's connection with a TCP reset without answering.
	Reset float64
	// Slow delays the request by Delay before forwarding it.
	Slow  float64
	Delay time.Duration
	// Fail, when it returns true, answers the request 503 SlowDown every
	// time: a fault that outlasts any retry budget.
	Fail func(r *http.Request) bool
	// Seed makes the random faults repeatable. Default: 1.
	Seed uint64
}

// FaultProxy is a reverse proxy in front of an HTTP server that injects
// throttling, connection resets and latency, for testing retries.
type FaultProxy struct {
	URL  string
	srv  *httptest.Server
	opts FaultOptions

	mu     sync.Mutex
	rnd    *rand.Rand
	counts map[string]int
}

// StartFaultProxy starts a proxy to target (http://host:port) on a
// loopback port; it stops when the test ends.
func StartFaultProxy(t testing.TB, target string, opts FaultOptions) *FaultProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatalf("fault proxy target %q: %v", target, err)
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	p := &FaultProxy{opts: opts, rnd: rand.New(rand.NewPCG(opts.Seed, opts.Seed)), counts: map[string]int{}}
	// The Host header is forwarded unchanged, so SigV4 signatures computed
	// for the proxy's address stay valid at the server.
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0) // aborted requests are the point here
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p.decide(r) {
		case "slowdown":
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`))
			return
		case "reset":
			if hj, ok := w.(http.Hijacker); ok {
				conn, _, err := hj.Hijack()
				if err == nil {
					if tc, ok := conn.(*net.TCPConn); ok {
						_ = tc.SetLinger(0) // close with RST, not FIN
					}
					conn.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		case "slow":
			select {
			case <-time.After(p.opts.Delay):
			case <-r.Context().Done():
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	p.URL = p.srv.URL
	t.Cleanup(p.srv.Close)
	return p
}

func (p *FaultProxy) decide(r *http.Request) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	fault := "pass"
	x := p.rnd.Float64()
	switch {
	case p.opts.Fail != nil && p.opts.Fail(r):
		fault = "slowdown"
	case x < p.opts.SlowDown:
		fault = "slowdown"
	case x < p.opts.SlowDown+p.opts.Reset:
		fault = "reset"
	case x < p.opts.SlowDown+p.opts.Reset+p.opts.Slow:
		fault = "slow"
	}
	p.counts[fault]++
	return fault
}

// Counts reports how many requests met each fate: "pass", "slowdown",
// "reset", "slow".
func (p *FaultProxy) Counts() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.counts))
	for k, v := range p.counts {
		out[k] = v
	}
	return out
}
