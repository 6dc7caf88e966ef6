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

	"github.com/jackc/pgx/v5"

	"github.com/assetctl/assetctl/internal/testsvc"
)

// pageLoad runs workers GETting the product pages p0..p{n-1} in turn
// until stop is closed; it counts answers by status class and transport
// errors, refused connections apart (a request the server never accepted).
type pageLoad struct {
	ok, status5xx, other, errs, refused atomic.Int64
	// closedIdle counts requests sent on a kept-alive connection the server
	// was closing as idle (EOF or reset on a reused connection): HTTP/1.1's
	// keep-alive race, a request the server never read.
	closedIdle atomic.Int64
	// unaccepted counts requests on a new connection closed with no answer:
	// at shutdown, connections still in the kernel's accept queue when the
	// listener closes are dropped (net/http cannot drain it; --drain-delay
	// and readiness let a load balancer stop sending first).
	unaccepted atomic.Int64
	// shutdownAt (Unix ns) is when the test sent SIGTERM: only requests
	// begun after it may be dropped unaccepted.
	shutdownAt atomic.Int64
	mu         sync.Mutex
	examples   []string
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startPageLoad(base string, workers, n int) *pageLoad {
	l := &pageLoad{stop: make(chan struct{})}
	// One kept-alive connection per worker: new connections are dialled
	// only when the server closed one, that is, around a shutdown.
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers, IdleConnTimeout: time.Minute}}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := w; i < 10_000_000; i += workers { // bounded; stop ends it first
				select {
				case <-l.stop:
					return
				default:
				}
				var reusedIdle, newConn bool
				trace := &httptrace.ClientTrace{GotConn: func(c httptrace.GotConnInfo) { reusedIdle, newConn = c.Reused && c.WasIdle, !c.Reused }}
				req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, fmt.Sprintf("%s/products/p%d", base, i%n), nil)
				began := time.Now().UnixNano()
				resp, err := client.Do(req)
				if err != nil {
					if errors.Is(err, syscall.ECONNREFUSED) {
						l.refused.Add(1)
						time.Sleep(5 * time.Millisecond)
						continue
					}
					if reusedIdle && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
						l.closedIdle.Add(1)
						continue
					}
					if at := l.shutdownAt.Load(); at != 0 && began >= at && newConn && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
						l.unaccepted.Add(1)
						l.note("unaccepted: " + err.Error())
						continue
					}
					l.errs.Add(1)
					l.note(err.Error())
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch {
				case resp.StatusCode == http.StatusOK:
					l.ok.Add(1)
				case resp.StatusCode >= 500:
					l.status5xx.Add(1)
					l.note(resp.Status)
				default:
					l.other.Add(1)
					l.note(resp.Status)
				}
			}
		}()
	}
	return l
}

func (l *pageLoad) note(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.examples) < 5 {
		l.examples = append(l.examples, s)
	}
}

func (l *pageLoad) Stop() {
	close(l.stop)
	l.wg.Wait()
}

func (l *pageLoad) String() string {
	return fmt.Sprintf("%d ok, %d 5xx, %d other status, %d errors, %d refused, %d sent on a connection closing as idle, %d dropped unaccepted (e.g. %v)",
		l.ok.Load(), l.status5xx.Load(), l.other.Load(), l.errs.Load(), l.refused.Load(), l.closedIdle.Load(), l.unaccepted.Load(), l.examples)
}

func createProducts(t *testing.T, base string, n int) {
	t.Helper()
	for i := range n {
		putDoc(t, base, "products", fmt.Sprintf("p%d", i), fmt.Sprintf(`{"name":"Product %d","price":"€%d.00"}`, i, i))
	}
}

// Redis killed under load: no 5xx and no failed request while it is down,
// and the cache is used again once it is back.
func TestServeRedisKilledUnderLoad(t *testing.T) {
	data := newServeData(t)
	dist := buildExample(t)
	rs := testsvc.StartRedis(t)
	s := startServe(t, exampleSite, append(data.args(), "--manifest", dist, "--cdn-url", "https://cdn.example.test/site/",
		"--redis", rs.Addr, "--cache-ttl", "2s", "--l1")...)
	createProducts(t, s.URL, 50)
	load := startPageLoad(s.URL, 8, 50)
	time.Sleep(time.Second)
	rs.Kill()
	time.Sleep(3 * time.Second)
	okDuringOutage := load.ok.Load()
	rs.Start(t)
	// Recovery: /readyz sees Redis again, and reads fill it again.
	rdb := rs.Client(t)
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, _, body := get(t, s.URL+"/readyz")
		keys, _ := rdb.Keys(context.Background(), "*").Result()
		if strings.Contains(body, `"redis"`) && !strings.Contains(body, `"down"`) && len(keys) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery 20s after Redis restarted: /readyz %s, %d keys", body, len(keys))
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	load.Stop()
	if load.status5xx.Load() != 0 || load.errs.Load() != 0 || load.other.Load() != 0 || load.refused.Load() != 0 || load.closedIdle.Load() != 0 || load.unaccepted.Load() != 0 {
		t.Errorf("under load with Redis killed and restarted: %v; want every request 200", load)
	}
	if okDuringOutage == 0 {
		t.Errorf("no request answered before Redis came back")
	}
	t.Logf("Redis killed for 3s under load: %v", load)
}

// One shard stopped: only the documents on it answer 503 with
// Retry-After, every other one 200; the list page says it is partial; all
// answer again once the shard is back.
func TestServeShardStopped(t *testing.T) {
	data := newServeData(t)
	dist := buildExample(t)
	private := testsvc.StartPostgres(t)
	shard3 := private.DSN("serve_s3") // assetctl serve creates it
	args := []string{"--catalog", data.catalog, "--manifest", dist, "--cdn-url", "https://cdn.example.test/site/"}
	for i, dsn := range data.shards[:3] {
		args = append(args, "--shard", fmt.Sprintf("s%d=%s", i, dsn))
	}
	args = append(args, "--shard", "s3="+shard3) // no Redis: every read goes to its shard
	s := startServe(t, exampleSite, args...)
	const n = 40
	createProducts(t, s.URL, n)

	onS3 := map[string]bool{}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, shard3)
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := conn.Query(ctx, `SELECT id FROM documents WHERE collection = 'products'`)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		onS3[id] = true
	}
	if len(onS3) == 0 || len(onS3) == n {
		t.Fatalf("shard s3 holds %d of %d products; want some, not all", len(onS3), n)
	}

	private.Stop(t)
	for i := range n {
		id := fmt.Sprintf("p%d", i)
		code, h, body := get(t, s.URL+"/products/"+id)
		switch {
		case onS3[id] && (code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || !strings.Contains(body, "Back in a moment")):
			t.Errorf("%s (on the stopped shard): got %d Retry-After %q, want 503 with Retry-After and the 503 page", id, code, h.Get("Retry-After"))
		case !onS3[id] && code != http.StatusOK:
			t.Errorf("%s (on a live shard): got %d, want 200", id, code)
		}
	}
	code, h, _ := get(t, s.URL+"/")
	if code != http.StatusOK || h.Get("X-Partial-Result") != "true" || h.Get("Cache-Control") != "no-store" {
		t.Errorf("list with a shard down: got %d X-Partial-Result %q Cache-Control %q, want 200, true, no-store", code, h.Get("X-Partial-Result"), h.Get("Cache-Control"))
	}

	private.Start(t)
	for id := range onS3 {
		if code, _, _ := get(t, s.URL+"/products/"+id); code != http.StatusOK {
			t.Errorf("%s after the shard restarted: got %d, want 200", id, code)
		}
	}
	t.Logf("%d of %d products on the stopped shard answered 503, the others 200", len(onS3), n)
}

// SIGTERM under load: every request the server accepted finishes with
// 200; after it, connections are refused and the process exits 0.
func TestServeSIGTERMUnderLoad(t *testing.T) {
	data := newServeData(t)
	dist := buildExample(t)
	_, prefix := testsvc.Redis(t)
	s := startServeProcess(t, exampleSite, append(data.args(), "--manifest", dist, "--cdn-url", "https://cdn.example.test/site/",
		"--redis", testsvc.SharedRedisAddr, "--cache-prefix", prefix)...)
	createProducts(t, s.URL, 20)
	load := startPageLoad(s.URL, 16, 20)
	time.Sleep(time.Second)
	okBefore := load.ok.Load()
	load.shutdownAt.Store(time.Now().UnixNano())
	code := s.Stop() // SIGTERM, then waits for the exit
	time.Sleep(300 * time.Millisecond)
	load.Stop()
	if code != 0 {
		t.Errorf("exit code after SIGTERM: got %d, want 0\n%s", code, s.stderr)
	}
	if load.status5xx.Load() != 0 || load.errs.Load() != 0 || load.other.Load() != 0 {
		t.Errorf("SIGTERM under load: %v; want no failed request (refused ones were never accepted)", load)
	}
	if okBefore == 0 || load.refused.Load() == 0 {
		t.Errorf("got %d answers before SIGTERM and %d refused after, want both > 0 (the load spanned the shutdown)", okBefore, load.refused.Load())
	}
	t.Logf("SIGTERM under load: %v", load)
}
