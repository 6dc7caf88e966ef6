package origin

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/assetctl/assetctl/internal/testsvc"
	"github.com/redis/go-redis/v9"
)

// benchProducts is how many products the load cycles through, so that
// concurrent requests rarely ask for the same key and the cache's per-key
// read coalescing cannot flatter the origin against the bare handler.
const benchProducts = 64

// benchHandlers are, for a cache tier, the origin (Server + API over a
// 4-shard store with its cache) and a bare net/http handler serving the
// same bytes for /api/products/p{0..63}:
//
//   - L1: the cache's in-process tier answers; the bare handler writes the
//     bytes from memory (a map lookup).
//   - Redis: L1 off, every read is a Redis GET; the bare handler does one
//     go-redis GET of the same bytes.
func benchHandlers(b *testing.B, tier string) (bare, origin http.Handler) {
	cfg := stackConfig{}
	if tier == "L1" {
		cfg.L1Size = 10000
	}
	st := newStack(b, cfg)
	a := newTestAPI(b, st, nil)
	stored := map[string][]byte{}
	for i := range benchProducts {
		id := "p" + strconv.Itoa(i)
		body := fmt.Sprintf(`{"name":"Desk lamp %d","price":3499,"sku":"LAMP-%d","description":"A small lamp with a long cord and a heavy base.","tags":["home","light"]}`, i, i)
		want(b, call(b, a, "PUT", "/api/products/"+id, body, auth...), 201)
		stored[id] = []byte(want(b, call(b, a, "GET", "/api/products/"+id, ""), 200))
	}
	mux := http.NewServeMux()
	mux.Handle("/api/", a)
	origin = newTestServer(b, mux, ServerOptions{}).Handler()
	const prefix = "/api/products/"
	if tier == "L1" {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(stored[strings.TrimPrefix(r.URL.Path, prefix)])
		}), origin
	}
	keyPrefix := "bench:origin:" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	for id, v := range stored {
		if err := st.RDB.Set(context.Background(), keyPrefix+id, v, time.Hour).Err(); err != nil {
			b.Fatal(err)
		}
	}
	b.Cleanup(func() { testsvc.DeleteRedisPrefix(b, st.RDB, keyPrefix) })
	rdb := st.RDB.(*redis.Client)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := rdb.Get(r.Context(), keyPrefix+strings.TrimPrefix(r.URL.Path, prefix)).Bytes()
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(v)
	}), origin
}

// serveBench serves h on loopback with a plain http.Server until the
// benchmark ends and returns its base URL.
func serveBench(b *testing.B, h http.Handler) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(l)
	b.Cleanup(func() { hs.Close() })
	return "http://" + l.Addr().String()
}

// BenchmarkAPIGet measures GET /api/products/{id} over loopback HTTP with
// Go clients: the whole origin chain (Server middleware: security headers,
// metrics, access log to a discarding logger; ServeMux; the API; the store
// and its cache) against the bare handler of benchHandlers.
//
// The machine is shared, so the two sides alternate in rounds (b.N rounds
// of 400 requests each from 8 keep-alive clients) and share any noise.
// Reported: ratio (origin req/s ÷ bare req/s), each side's req/s, p50 and
// p99 latency, and cpu-ratio: the process CPU time (getrusage: server,
// clients and GC together) per request of the bare side ÷ the origin's,
// which is what the throughput ratio tends to when the cores are
// saturated, and which does not grow while the process waits for a core.
// Run with -benchtime 30x (see BENCHMARKS.md).
func BenchmarkAPIGet(b *testing.B) {
	for _, tier := range []string{"L1", "Redis"} {
		b.Run(tier, func(b *testing.B) {
			bare, origin := benchHandlers(b, tier)
			sides := []*loadSide{newLoadSide(b, bare), newLoadSide(b, origin)}
			b.ResetTimer()
			for b.Loop() {
				for _, s := range sides {
					s.round(b, 400)
				}
			}
			b.StopTimer()
			bareRate, originRate := sides[0].rate(), sides[1].rate()
			b.ReportMetric(originRate/bareRate, "ratio")
			b.ReportMetric(sides[0].cpuPerRequest()/sides[1].cpuPerRequest(), "cpu-ratio")
			b.ReportMetric(sides[1].cpuPerRequest(), "origin-cpu-µs/req")
			b.ReportMetric(sides[0].cpuPerRequest(), "bare-cpu-µs/req")
			b.ReportMetric(bareRate, "bare-req/s")
			b.ReportMetric(originRate, "origin-req/s")
			b.ReportMetric(sides[0].percentile(50), "bare-p50-µs")
			b.ReportMetric(sides[0].percentile(99), "bare-p99-µs")
			b.ReportMetric(sides[1].percentile(50), "origin-p50-µs")
			b.ReportMetric(sides[1].percentile(99), "origin-p99-µs")
		})
	}
}

// loadSide is one HTTP server on loopback and its keep-alive clients.
type loadSide struct {
	base    string
	client  *http.Client
	elapsed time.Duration
	cpu     time.Duration
	lat     []time.Duration
}

const loadClients = 8

func newLoadSide(b *testing.B, h http.Handler) *loadSide {
	tr := &http.Transport{MaxIdleConnsPerHost: loadClients, DisableCompression: true}
	b.Cleanup(tr.CloseIdleConnections)
	s := &loadSide{base: serveBench(b, h), client: &http.Client{Transport: tr}}
	for i := range 4 * benchProducts { // warm the connections and the cache tiers
		if err := s.get(i); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

func (s *loadSide) get(i int) error {
	resp, err := s.client.Get(s.base + "/api/products/p" + strconv.Itoa(i%benchProducts))
	if err != nil {
		return err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || n < 100 {
		return fmt.Errorf("got %d, %d bytes, %v", resp.StatusCode, n, err)
	}
	return nil
}

// processCPU is the user+system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// round sends n requests from loadClients goroutines, each cycling
// through the products from its own offset.
func (s *loadSide) round(b *testing.B, n int) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	start, cpu0 := time.Now(), processCPU()
	for c := range loadClients {
		wg.Go(func() {
			lat := make([]time.Duration, 0, n/loadClients)
			for i := range n / loadClients {
				t0 := time.Now()
				if err := s.get(c*benchProducts/loadClients + i); err != nil {
					b.Error(err)
					return
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			s.lat = append(s.lat, lat...)
			mu.Unlock()
		})
	}
	wg.Wait()
	s.elapsed += time.Since(start)
	s.cpu += processCPU() - cpu0
}

func (s *loadSide) rate() float64 { return float64(len(s.lat)) / s.elapsed.Seconds() }

func (s *loadSide) cpuPerRequest() float64 {
	return float64(s.cpu.Microseconds()) / float64(len(s.lat))
}

func (s *loadSide) percentile(p int) float64 {
	if len(s.lat) == 0 {
		return 0
	}
	slices.Sort(s.lat)
	return float64(s.lat[len(s.lat)*p/100].Microseconds())
}

// wrkScript makes each wrk connection cycle through the products.
const wrkScript = `local i = 0
request = function()
  i = (i + 1) % ` + "64" + `
  return wrk.format(nil, "/api/products/p" .. i)
end
`

// BenchmarkAPIGetWrk is BenchmarkAPIGet with wrk as the load generator
// (wrk -t1 -c8 -d3s --latency with a script cycling through the
// products; a C client, so the servers' work dominates what is measured):
// each of the b.N rounds runs wrk against the bare handler and then the
// origin. Reported: ratio of requests/s, each side's req/s, and the mean
// of the rounds' p50 and p99. Run with -benchtime 5x.
func BenchmarkAPIGetWrk(b *testing.B) {
	wrk := testsvc.Binary(b, "wrk", "apt-get install -y wrk")
	script := filepath.Join(b.TempDir(), "products.lua")
	if err := os.WriteFile(script, []byte(wrkScript), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, tier := range []string{"L1", "Redis"} {
		b.Run(tier, func(b *testing.B) {
			bare, origin := benchHandlers(b, tier)
			urls := []string{serveBench(b, bare), serveBench(b, origin)}
			var reqs, p50, p99 [2]float64
			rounds := 0
			for b.Loop() {
				rounds++
				for i, u := range urls {
					r := runWrk(b, wrk, script, u)
					reqs[i] += r.rate
					p50[i] += r.p50
					p99[i] += r.p99
				}
			}
			n := float64(rounds)
			b.ReportMetric(reqs[1]/reqs[0], "ratio")
			b.ReportMetric(reqs[0]/n, "bare-req/s")
			b.ReportMetric(reqs[1]/n, "origin-req/s")
			b.ReportMetric(p50[0]/n, "bare-p50-µs")
			b.ReportMetric(p99[0]/n, "bare-p99-µs")
			b.ReportMetric(p50[1]/n, "origin-p50-µs")
			b.ReportMetric(p99[1]/n, "origin-p99-µs")
		})
	}
}

type wrkResult struct{ rate, p50, p99 float64 }

// runWrk runs wrk for 3 seconds and reads requests/s and the p50 and p99
// latency (µs) from its --latency report; any non-2xx answer or socket
// error fails the benchmark.
func runWrk(b *testing.B, wrk, script, base string) wrkResult {
	out, err := exec.Command(wrk, "-t1", "-c8", "-d3s", "--latency", "-s", script, base).CombinedOutput()
	if err != nil {
		b.Fatalf("wrk %s: %v\n%s", base, err, out)
	}
	var r wrkResult
	for line := range strings.SplitSeq(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "Requests/sec:":
			r.rate, _ = strconv.ParseFloat(f[1], 64)
		case len(f) == 2 && f[0] == "50%":
			r.p50 = wrkMicros(f[1])
		case len(f) == 2 && f[0] == "99%":
			r.p99 = wrkMicros(f[1])
		case strings.Contains(line, "Non-2xx") || strings.Contains(line, "Socket errors"):
			b.Fatalf("wrk %s: %s\n%s", base, line, out)
		}
	}
	if r.rate == 0 {
		b.Fatalf("wrk %s: no Requests/sec in\n%s", base, out)
	}
	return r
}

// wrkMicros reads a wrk duration such as 123.45us, 1.20ms or 2.00s.
func wrkMicros(s string) float64 {
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"us", 1}, {"ms", 1000}, {"s", 1e6}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f * u.mult
		}
	}
	return 0
}

// discardResponse is a reusable http.ResponseWriter for
// BenchmarkAPIGetHandler: it keeps nothing, so the allocations the
// benchmark reports are the origin chain's own.
type discardResponse struct{ h http.Header }

func (d *discardResponse) Header() http.Header         { return d.h }
func (d *discardResponse) WriteHeader(int)             {}
func (d *discardResponse) Write(b []byte) (int, error) { return len(b), nil }

// BenchmarkAPIGetHandler runs the origin chain of BenchmarkAPIGet's L1
// group in process, without a network or net/http's server, to count
// the chain's own time and allocations per GET (the part of the
// end-to-end ratio the origin's code controls).
func BenchmarkAPIGetHandler(b *testing.B) {
	_, origin := benchHandlers(b, "L1")
	reqs := make([]*http.Request, benchProducts)
	for i := range reqs {
		reqs[i] = httptest.NewRequest(http.MethodGet, "/api/products/p"+strconv.Itoa(i), nil)
	}
	w := &discardResponse{h: http.Header{}}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		clear(w.h)
		origin.ServeHTTP(w, reqs[i%benchProducts])
		i++
	}
}
