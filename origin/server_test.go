package origin

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func newTestServer(t testing.TB, h http.Handler, o ServerOptions) *Server {
	t.Helper()
	s, err := NewServer(h, o)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	return s
}

// serveLoopback runs s on a loopback port until the test ends and returns
// its base URL, a stop function and wait, which returns Serve's result.
func serveLoopback(t testing.TB, s *Server) (string, context.CancelFunc, func() error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var serveErr error
	go func() { serveErr = s.Serve(ctx, l); close(done) }()
	wait := func() error { <-done; return serveErr }
	t.Cleanup(func() {
		cancel()
		wait()
	})
	return "http://" + l.Addr().String(), cancel, wait
}

func TestServerSecurityHeaders(t *testing.T) {
	var seen string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = Nonce(r.Context())
		io.WriteString(w, "<p>hi</p>")
	})
	s := newTestServer(t, h, ServerOptions{CDNURL: "https://cdn.example.com/site/"})
	resp := call(t, s.Handler(), "GET", "/page", "")
	want(t, resp, 200)
	csp := resp.Header.Get("Content-Security-Policy")
	if len(seen) < 16 || !strings.Contains(csp, "script-src 'self' https://cdn.example.com/site/ 'nonce-"+seen+"'") {
		t.Errorf("CSP %q does not allow the CDN and the handler's nonce %q in script-src", csp, seen)
	}
	if !strings.Contains(csp, "style-src 'self' https://cdn.example.com/site/ 'nonce-"+seen+"'") || !strings.Contains(csp, "object-src 'none'") {
		t.Errorf("CSP %q lacks style-src with the nonce or object-src 'none'", csp)
	}
	for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "strict-origin-when-cross-origin", "Strict-Transport-Security": ""} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s: got %q, want %q (no HSTS over plain HTTP)", k, got, v)
		}
	}
	first := seen
	want(t, call(t, s.Handler(), "GET", "/page", ""), 200)
	if seen == first {
		t.Errorf("two requests got the same nonce %q", seen)
	}
	if Nonce(context.Background()) != "" {
		t.Errorf("Nonce outside a request is not empty")
	}
}

// TestServerTLS serves HTTPS from certificate files: HTTP/2 is negotiated
// and HSTS is sent.
func TestServerTLS(t *testing.T) {
	certFile, keyFile, pool := selfSignedCert(t)
	s := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	}), ServerOptions{TLSCertFile: certFile, TLSKeyFile: keyFile})
	base, _, _ := serveLoopback(t, s)
	base = strings.Replace(base, "http://", "https://", 1)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(base + "/x")
	if err != nil {
		t.Fatalf("GET over TLS: %v", err)
	}
	body := want(t, resp, 200)
	if resp.ProtoMajor != 2 || body != "HTTP/2.0" {
		t.Errorf("got protocol %s (handler saw %s), want HTTP/2.0", resp.Proto, body)
	}
	if got := resp.Header.Get("Strict-Transport-Security"); !strings.HasPrefix(got, "max-age=63072000") {
		t.Errorf("HSTS over TLS: got %q, want max-age=63072000; includeSubDomains", got)
	}
}

func selfSignedCert(t testing.TB) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestServerMetrics: requests are counted by route pattern (from a
// ServeMux or SetRoute), never by raw path, on the injected registry.
func TestServerMetrics(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /products/{id}", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "p") })
	mux.HandleFunc("/custom/", func(w http.ResponseWriter, r *http.Request) {
		SetRoute(r.Context(), "/custom/{name}")
		w.WriteHeader(http.StatusTeapot)
	})
	reg := prometheus.NewRegistry()
	s := newTestServer(t, mux, ServerOptions{Registerer: reg, Gatherer: reg})
	for _, p := range []string{"/products/1", "/products/2", "/custom/a", "/nowhere"} {
		readBody(t, call(t, s.Handler(), "GET", p, ""))
	}
	metrics := want(t, call(t, s.Handler(), "GET", "/metrics", ""), 200)
	for _, line := range []string{
		`origin_http_requests_total{code="200",method="GET",route="GET /products/{id}"} 2`,
		`origin_http_requests_total{code="418",method="GET",route="/custom/{name}"} 1`,
		`origin_http_requests_total{code="404",method="GET",route="other"} 1`,
		`origin_http_request_duration_seconds_count{method="GET",route="GET /products/{id}"} 2`,
	} {
		if !strings.Contains(metrics, line) {
			t.Errorf("/metrics lacks %s\n%s", line, metrics)
		}
	}
	if strings.Contains(metrics, `route="/products/1"`) {
		t.Errorf("/metrics labels a raw path")
	}
	if _, err := NewServer(mux, ServerOptions{Registerer: reg}); err == nil {
		t.Errorf("a second Server on one registry: got no error, want a registration error")
	}
}

func TestServerBodyLimit(t *testing.T) {
	var got error
	s := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, got = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusRequestEntityTooLarge)
	}), ServerOptions{MaxBodyBytes: 10})
	readBody(t, call(t, s.Handler(), "POST", "/x", strings.Repeat("a", 11)))
	if _, ok := errors.AsType[*http.MaxBytesError](got); !ok {
		t.Errorf("reading an 11-byte body under a 10-byte limit: got %v, want *http.MaxBytesError", got)
	}
}

// TestServerReadyz checks the catalog, every shard and Redis: up, then
// degraded (200) while Redis is down, up again once it is back.
func TestServerReadyz(t *testing.T) {
	st := newStack(t, stackConfig{PrivateRedis: true})
	deps := append(ClusterDependencies(st.Cluster), RedisDependency(st.RDB))
	s := newTestServer(t, http.NotFoundHandler(), ServerOptions{Dependencies: deps, CheckTimeout: time.Second})
	readyz := func(wantCode int, wantStatus string) Readiness {
		t.Helper()
		var r Readiness
		body := want(t, call(t, s.Handler(), "GET", "/readyz", ""), wantCode)
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatalf("decode /readyz %s: %v", body, err)
		}
		if r.Status != wantStatus {
			t.Fatalf("/readyz: got status %q, want %q: %s", r.Status, wantStatus, body)
		}
		return r
	}
	r := readyz(200, "up")
	for _, name := range []string{"catalog", "shard:s0", "shard:s1", "shard:s2", "shard:s3", "redis"} {
		if r.Checks[name].Status != "up" {
			t.Errorf("check %s: got %+v, want up", name, r.Checks[name])
		}
	}
	st.Redis.Kill()
	r = readyz(200, "degraded")
	if r.Checks["redis"].Status != "down" || r.Checks["redis"].Error == "" || r.Checks["shard:s0"].Status != "up" {
		t.Errorf("with Redis killed: got %+v, want redis down with an error, shards up", r.Checks)
	}
	st.Redis.Start(t)
	readyz(200, "up")
	want(t, call(t, s.Handler(), "GET", "/healthz", ""), 200)
}

// TestServerGracefulShutdown: with requests in flight, cancelling the
// context turns readiness down first; the in-flight requests then finish
// with 200 and Serve returns nil.
func TestServerGracefulShutdown(t *testing.T) {
	const inFlight = 20
	var started sync.WaitGroup
	started.Add(inFlight)
	release := make(chan struct{})
	var served atomic.Int32
	s := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started.Done()
			<-release
		}
		served.Add(1)
		io.WriteString(w, "done")
	}), ServerOptions{DrainDelay: 2 * time.Second})
	base, cancel, done := serveLoopback(t, s)
	client := &http.Client{}
	defer client.CloseIdleConnections()
	var wg sync.WaitGroup
	errs := make(chan error, inFlight)
	for range inFlight {
		wg.Go(func() {
			resp, err := client.Get(base + "/slow")
			if err != nil {
				errs <- err
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != "done" {
				errs <- errors.New("in-flight request got " + resp.Status + " " + string(b))
			}
		})
	}
	started.Wait()
	cancel()
	// Readiness is down while the requests are still in flight, and the
	// listener still answers during DrainDelay.
	for !func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			t.Fatalf("GET /readyz during the drain delay: %v", err)
		}
		body := readBody(t, resp)
		return resp.StatusCode == 503 && strings.Contains(body, `"shutting_down":true`)
	}() {
		time.Sleep(10 * time.Millisecond)
	}
	if s.Ready() {
		t.Fatalf("Ready() is true after shutdown began")
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("in-flight request failed: %v", err)
	}
	if err := done(); err != nil {
		t.Errorf("Serve after a graceful shutdown: got %v, want nil", err)
	}
	if n := served.Load(); n != inFlight {
		t.Errorf("served %d slow requests, want %d", n, inFlight)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Errorf("the server still accepts connections after Serve returned")
	}
}

func TestServerJSONCSP(t *testing.T) {
	s := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{}`)
	}), ServerOptions{CDNURL: "https://cdn.example.com/"})
	resp := call(t, s.Handler(), "GET", "/x", "")
	want(t, resp, 200)
	if got := resp.Header.Get("Content-Security-Policy"); got != "default-src 'none'; frame-ancestors 'none'" {
		t.Errorf("CSP of a JSON response: got %q", got)
	}
	resp = call(t, s.Handler(), "GET", "/readyz", "")
	want(t, resp, 200)
	if got := resp.Header.Get("Content-Security-Policy"); got != "default-src 'none'; frame-ancestors 'none'" {
		t.Errorf("CSP of /readyz: got %q", got)
	}
}
