package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/assetctl/assetctl/internal/testsvc"
)

// herd sends n GETs of path at once, spread over the bases, each on its
// own connection, and returns how many answered other than 200 (with one
// example). The connections are opened first (a GET of /healthz on each),
// so the herd is n concurrent requests, not n connection handshakes.
func herd(t *testing.T, bases []string, path string, n int) (bad int64, example string) {
	t.Helper()
	var (
		ready   sync.WaitGroup
		start   = make(chan struct{})
		wg      sync.WaitGroup
		nbad    atomic.Int64
		exampMu sync.Mutex
	)
	for i := range n {
		wg.Add(1)
		ready.Add(1)
		go func() {
			defer wg.Done()
			// One connection per client, kept alive for the herd.
			tr := &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Minute}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 5 * time.Minute}
			for try := 0; try < 20; try++ {
				resp, err := client.Get(bases[i%len(bases)] + "/healthz")
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			ready.Done()
			<-start
			var reusedIdle bool
			trace := &httptrace.ClientTrace{GotConn: func(c httptrace.GotConnInfo) { reusedIdle = c.Reused && c.WasIdle }}
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, bases[i%len(bases)]+path, nil)
			resp, err := client.Do(req)
			if err != nil && reusedIdle && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
				// The server closed the kept-alive connection as the request
				// went out (HTTP/1.1's keep-alive race): it never read it, and
				// a client sends it again on a new connection.
				resp, err = client.Get(bases[i%len(bases)] + path)
			}
			if err != nil {
				nbad.Add(1)
				exampMu.Lock()
				example = err.Error()
				exampMu.Unlock()
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				nbad.Add(1)
				exampMu.Lock()
				example = resp.Status
				exampMu.Unlock()
			}
		}()
	}
	ready.Wait()
	close(start)
	wg.Wait()
	return nbad.Load(), example
}

// The seed's thundering herd over HTTP: 5,000 concurrent GETs of a hot
// product page whose cache entry has just expired cost exactly one
// database read (counted by PostgreSQL), and at most one when the herd is
// spread over three origin processes sharing Redis.
func TestServeHerd(t *testing.T) {
	dist := buildExample(t)
	for _, procs := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d origins", procs), func(t *testing.T) {
			data := newServeData(t)
			_, prefix := testsvc.Redis(t)
			args := append(data.args(), "--manifest", dist, "--cdn-url", "https://cdn.example.test/site/",
				"--redis", testsvc.SharedRedisAddr, "--cache-prefix", prefix, "--l1",
				// Stampede protection is the subject here, not Redis latency: under
				// -race with 5,000 requests on two cores a Redis call can take
				// longer than the 250ms default, which sends reads to the shard
				// by design (tested in TestServeRedisKilledUnderLoad).
				"--cache-op-timeout", "5s")
			// The warm-up stores the entry for 1s; the herd's origins store
			// the refreshed one for 5 minutes, so the herd (which takes a few
			// seconds on two cores) meets exactly one expiry.
			warm := append(args[:len(args):len(args)], "--cache-ttl", "1s")
			args = append(args, "--cache-ttl", "5m")

			// Create the product and read it once, so Redis holds it; then stop,
			// so the backends exit and flush their statistics.
			s := startServeProcess(t, exampleSite, warm...)
			putDoc(t, s.URL, "products", "hot", `{"name":"Hot Lamp","price":"€1.00"}`)
			if code, _, body := get(t, s.URL+"/products/hot"); code != 200 {
				t.Fatalf("warm-up GET: got %d %s", code, body)
			}
			if code := s.Stop(); code != 0 {
				t.Fatalf("stop: exit %d\n%s", code, s.stderr)
			}
			data.waitBackendsGone(t)
			// New processes (nothing in their in-process tier) once the Redis
			// entry's TTL (1s plus up to 10% jitter) has passed.
			var origins []*served
			var bases []string
			for range procs {
				o := startServeProcess(t, exampleSite, args...)
				origins = append(origins, o)
				bases = append(bases, o.URL)
			}
			time.Sleep(1500 * time.Millisecond)
			before := data.documentReads(t)

			began := time.Now()
			bad, example := herd(t, bases, "/products/hot", 5000)
			took := time.Since(began)
			if bad != 0 {
				t.Errorf("herd: %d of 5000 requests failed (e.g. %s), want 0", bad, example)
			}
			for _, o := range origins {
				_, _, metrics := get(t, o.URL+"/metrics")
				for _, line := range strings.Split(metrics, "\n") {
					if strings.HasPrefix(line, "shardedapi_cache_") && !strings.HasSuffix(line, " 0") && !strings.Contains(line, "_bucket") {
						t.Log(line)
					}
				}
				if code := o.Stop(); code != 0 {
					t.Errorf("stop: exit %d\n%s", code, o.stderr)
				}
			}
			data.waitBackendsGone(t)
			reads := data.documentReads(t) - before
			if procs == 1 && reads != 1 {
				t.Errorf("database reads of the documents table during the herd: got %d, want exactly 1", reads)
			}
			if procs > 1 && reads > 1 {
				t.Errorf("database reads of the documents table during the herd over %d origins: got %d, want at most 1", procs, reads)
			}
			t.Logf("%d origin(s): 5000 GETs in %v, %d database read(s)", procs, took.Round(time.Millisecond), reads)
		})
	}
}
