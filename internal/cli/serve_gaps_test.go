package cli

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
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/assetctl/assetctl/internal/testsvc"
	"github.com/assetctl/assetctl/manifest"
)

// selfSignedCert writes a certificate and key for 127.0.0.1 and returns
// their files and a pool trusting the certificate.
func selfSignedCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "assetctl test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
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
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// informational is one 1xx response a client saw.
type informational struct {
	code   int
	header textproto.MIMEHeader
}

// tracedGet GETs url as a browser navigation and returns the 1xx
// responses seen before the final one.
func tracedGet(t *testing.T, client *http.Client, url string) ([]informational, *http.Response, string) {
	t.Helper()
	var mu sync.Mutex
	var got []informational
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, informational{code, textproto.MIMEHeader(http.Header(h).Clone())})
		return nil
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	req.Header.Set("Sec-Fetch-Dest", "document")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	mu.Lock()
	defer mu.Unlock()
	return got, resp, string(b)
}

// TestServeEarlyHintsOverTLS runs assetctl serve with TLS: an HTTP/2
// navigation sees a 103 carrying the page's Link header before the 200
// (through the server's recorder, the live middleware and the pages
// handler); the same request over HTTP/1.1 sees none; the access log and
// the metrics record the final 200, never the 103.
func TestServeEarlyHintsOverTLS(t *testing.T) {
	data := newServeData(t)
	dist := buildExample(t)
	certFile, keyFile, pool := selfSignedCert(t)
	addr := testsvc.Addr(testsvc.FreePort(t))
	base := "https://" + addr
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	args := append([]string{"serve", exampleSite, "--addr", addr, "--manifest", dist,
		"--cdn-url", "https://cdn.example.test/site/", "--poll-interval", "1h",
		"--tls-cert", certFile, "--tls-key", keyFile, "--token", testToken}, data.args()...)
	go func() { done <- Run(ctx, args, strings.NewReader(""), stdout, stderr) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	h2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	// An empty TLSNextProto map turns HTTP/2 off.
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool},
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}}
	t.Cleanup(h2.CloseIdleConnections)
	t.Cleanup(h1.CloseIdleConnections)
	waitTLSHealthy(t, h2, base, done, stdout, stderr)

	req, _ := http.NewRequest(http.MethodPut, base+"/api/products/hint1", strings.NewReader(`{"name":"Hinted","price":3}`))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := h2.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT over HTTP/2: %s", resp.Status)
	}

	for _, path := range []string{"/products/hint1", "/"} {
		hints, resp, body := tracedGet(t, h2, base+path)
		if resp.ProtoMajor != 2 {
			t.Fatalf("GET %s: got %s, want HTTP/2", path, resp.Proto)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s over HTTP/2: %s\n%s", path, resp.Status, body)
		}
		link := resp.Header.Get("Link")
		if link == "" || !strings.Contains(link, "https://cdn.example.test/site/") {
			t.Fatalf("GET %s: final Link header %q, want the page's preloads on the CDN", path, link)
		}
		if len(hints) != 1 || hints[0].code != http.StatusEarlyHints {
			t.Fatalf("GET %s over HTTP/2: 1xx responses %+v, want exactly one 103", path, hints)
		}
		if got := hints[0].header.Values("Link"); len(got) == 0 || got[0] != link {
			t.Errorf("GET %s: the 103's Link %q, want the final response's %q", path, got, link)
		}
		// The final response's Link header is the page's one value, not
		// repeated by the hint.
		if n := len(resp.Header.Values("Link")); n != 1 {
			t.Errorf("GET %s: the final response has %d Link headers, want 1: %q", path, n, resp.Header.Values("Link"))
		}
		if resp.Header.Get("X-Build-ID") == "" || resp.Header.Get("Strict-Transport-Security") == "" {
			t.Errorf("GET %s: X-Build-ID %q, HSTS %q: want both on the final response", path, resp.Header.Get("X-Build-ID"), resp.Header.Get("Strict-Transport-Security"))
		}
		if hints[0].header.Get("Content-Security-Policy") != "" {
			t.Errorf("GET %s: the 103 carries the CSP %q, want it only on the final response", path, hints[0].header.Get("Content-Security-Policy"))
		}

		hints, resp, body = tracedGet(t, h1, base+path)
		if resp.ProtoMajor != 1 || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s over HTTP/1.1: %s %s\n%s", path, resp.Proto, resp.Status, body)
		}
		if len(hints) != 0 {
			t.Errorf("GET %s over HTTP/1.1: got 1xx responses %+v, want none", path, hints)
		}
		if resp.Header.Get("Link") != link {
			t.Errorf("GET %s over HTTP/1.1: Link %q, want %q", path, resp.Header.Get("Link"), link)
		}
	}

	// An API read is not a page: no hint.
	hints, resp, _ := tracedGet(t, h2, base+"/api/products/hint1")
	if resp.StatusCode != http.StatusOK || len(hints) != 0 {
		t.Errorf("GET /api/products/hint1 over HTTP/2: %s with 1xx %+v, want 200 and none", resp.Status, hints)
	}

	// The recorder took the 200, not the 103, as each page's status.
	_, _, body := tracedGet(t, h2, base+"/metrics")
	if strings.Contains(body, `code="103"`) {
		t.Errorf("/metrics counts 103 as a final status:\n%s", grepLines(body, "origin_http_requests_total"))
	}
	if !strings.Contains(body, `code="200"`) {
		t.Errorf("/metrics has no 200 count:\n%s", grepLines(body, "origin_http_requests_total"))
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("assetctl serve exited with %d:\n%s", code, stderr)
	}
	done <- 0
	logs := stderr.String()
	if !strings.Contains(logs, "path=/products/hint1") || strings.Contains(logs, "status=103") {
		t.Errorf("access log: want the page's request logged with its final status, never 103:\n%s", grepLines(logs, "msg=request"))
	}
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "msg=request") && strings.Contains(line, "path=/products/hint1") &&
			(!strings.Contains(line, "status=200") || !strings.Contains(line, "proto=HTTP/")) {
			t.Errorf("access log line %q: want status=200", line)
		}
	}
}

// grepLines keeps the lines of s that hold sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func waitTLSHealthy(t *testing.T, client *http.Client, base string, done chan int, stdout, stderr *syncBuffer) {
	t.Helper()
	for range 1200 { // a first run migrates five databases
		select {
		case code := <-done:
			done <- code
			t.Fatalf("assetctl serve exited with %d before serving:\n%s%s", code, stdout, stderr)
		default:
		}
		if resp, err := client.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("assetctl serve did not answer %s/healthz:\n%s%s", base, stdout, stderr)
}

// TestServeSIGHUPReloadsBuildDirectory: with a build directory as the
// manifest source and an hour-long poll, replacing the build and sending
// SIGHUP makes the next page carry the new build's ID and asset URLs.
func TestServeSIGHUPReloadsBuildDirectory(t *testing.T) {
	data := newServeData(t)
	dist := buildExample(t)
	site2 := copyTree(t, exampleSite)
	for name, extra := range map[string]string{"js/app.ts": "\nexport const release = 2;\n", "css/site.css": "\nmain { outline: 0; }\n"} {
		f, err := os.OpenFile(filepath.Join(site2, name), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = f.WriteString(extra)
		f.Close()
	}
	dist2 := filepath.Join(t.TempDir(), "dist")
	if code, _, stderr := run(t, "build", site2, "-o", dist2); code != 0 {
		t.Fatalf("build v2: %s", stderr)
	}
	m1, err := manifest.Load(dist)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := manifest.Load(dist2)
	if err != nil {
		t.Fatal(err)
	}
	if m1.BuildID == m2.BuildID {
		t.Fatalf("the two builds have the same ID %s", m1.BuildID)
	}
	const cdn = "https://cdn.example.test/site/"
	s, proc := startServeChild(t, exampleSite, append(data.args(), "--manifest", dist, "--cdn-url", cdn,
		"--poll-interval", "1h", "--token", testToken)...)
	putDoc(t, s.URL, "products", "hup1", `{"name":"Reloaded","price":1}`)

	page := func() (string, string) {
		t.Helper()
		code, h, body := get(t, s.URL+"/products/hup1")
		if code != http.StatusOK {
			t.Fatalf("GET /products/hup1: %d\n%s", code, body)
		}
		return h.Get("X-Build-ID"), body
	}
	id, body := page()
	if id != m1.BuildID {
		t.Fatalf("X-Build-ID before the reload: %q, want %q", id, m1.BuildID)
	}
	for _, name := range []string{"js/app.ts", "css/site.css"} {
		if !strings.Contains(body, cdn+m1.Files[name].Path) {
			t.Fatalf("the page before the reload lacks %s's URL %s", name, cdn+m1.Files[name].Path)
		}
	}

	// Replace the build the way a deploy script would: the new directory
	// moved into place.
	if err := os.Rename(dist, dist+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dist2, dist); err != nil {
		t.Fatal(err)
	}
	// Without the signal the hour-long poll keeps the first build.
	if id, _ := page(); id != m1.BuildID {
		t.Fatalf("X-Build-ID before SIGHUP: %q, want still %q (poll interval 1h)", id, m1.BuildID)
	}
	if err := proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// The signal is handled asynchronously: wait for the log line, then
	// check the very next page.
	for i := 0; !strings.Contains(s.stderr.String(), "SIGHUP: manifest reloaded"); i++ {
		if i == 600 || strings.Contains(s.stderr.String(), "SIGHUP: reload manifest") {
			t.Fatalf("no reload after SIGHUP:\n%s", s.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	id, body = page()
	if id != m2.BuildID {
		t.Errorf("X-Build-ID after SIGHUP: %q, want %q", id, m2.BuildID)
	}
	for _, name := range []string{"js/app.ts", "css/site.css"} {
		if !strings.Contains(body, cdn+m2.Files[name].Path) {
			t.Errorf("the page after SIGHUP lacks %s's new URL %s", name, cdn+m2.Files[name].Path)
		}
		if m1.Files[name].Path != m2.Files[name].Path && strings.Contains(body, cdn+m1.Files[name].Path) {
			t.Errorf("the page after SIGHUP still names %s's old URL %s", name, cdn+m1.Files[name].Path)
		}
	}
	if code := s.Stop(); code != 0 {
		t.Errorf("exit code after SIGTERM: %d\n%s", code, s.stderr)
	}
}

// TestServeOversizedBodyOverNetwork: a PUT larger than the body limit
// (1 MiB by default), with and without a Content-Length, answers 413 JSON
// naming the limit, and the document stays as it was (or absent).
func TestServeOversizedBodyOverNetwork(t *testing.T) {
	data := newServeData(t)
	dist := buildExample(t)
	s := startServe(t, exampleSite, append(data.args(), "--manifest", dist, "--cdn-url", "https://cdn.example.test/site/",
		"--poll-interval", "1h", "--token", testToken)...)
	const limit = 1 << 20
	putDoc(t, s.URL, "products", "kept", `{"name":"Kept","price":1}`)
	_, _, before := get(t, s.URL+"/api/products/kept")

	big := `{"name":"` + strings.Repeat("a", 2*limit) + `"}`
	for _, tc := range []struct {
		name, id string
		chunked  bool
	}{
		{"new document, Content-Length", "big1", false},
		{"new document, chunked", "big2", true},
		{"existing document, Content-Length", "kept", false},
		{"existing document, chunked", "kept", true},
	} {
		var body io.Reader = strings.NewReader(big)
		if tc.chunked {
			body = io.MultiReader(strings.NewReader(big)) // no length known: sent chunked
		}
		req, _ := http.NewRequest(http.MethodPut, s.URL+"/api/products/"+tc.id, body)
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", "application/json")
		// A fresh connection each time: the server closes one after a 413.
		client := &http.Client{Transport: &http.Transport{}}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: PUT: %v", tc.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		client.CloseIdleConnections()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("%s: got %s %s, want 413", tc.name, resp.Status, b)
			continue
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s: Content-Type %q, want JSON", tc.name, ct)
		}
		var e struct {
			Status int    `json:"status"`
			Error  string `json:"error"`
			Limit  int64  `json:"limit"`
		}
		if err := json.Unmarshal(b, &e); err != nil || e.Status != 413 || e.Limit != limit || e.Error == "" {
			t.Errorf("%s: body %s (%v), want {status:413, limit:%d, error}", tc.name, b, err, limit)
		}
	}
	for _, id := range []string{"big1", "big2"} {
		if code, _, body := get(t, s.URL+"/api/products/"+id); code != http.StatusNotFound {
			t.Errorf("GET %s after the oversized PUT: %d %s, want 404 (nothing written)", id, code, body)
		}
	}
	if _, _, after := get(t, s.URL+"/api/products/kept"); after != before {
		t.Errorf("the document changed after oversized PUTs:\nbefore %s\nafter  %s", before, after)
	}
}
