package origin

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// BenchmarkAPIGet measures GET /api/products/{id} over loopback HTTP
// through the whole origin chain (Server middleware: security headers,
// metrics, access log to a discarding logger; the API; the document store
// and its cache) against a bare net/http handler serving the same bytes:
//
//   - L1: the document comes from the cache's in-process tier; the bare
//     handler writes the bytes from memory.
//   - Redis: L1 off, every read is a Redis GET; the bare handler does one
//     go-redis GET of the same bytes.
//
// The machine is shared, so the two sides alternate in rounds (b.N rounds
// of 400 requests each from 8 keep-alive clients) and share any noise.
// Reported: ratio (origin req/s ÷ bare req/s), each side's req/s, p50 and
// p99 latency, and cpu-ratio: the process CPU time (getrusage: server,
// clients and GC together) per request of the bare side ÷ the origin's,
// which is what the throughput ratio tends to when the cores are
// saturated, and does not grow while the process waits for a core on a
// busy machine. Run with -benchtime 30x (see BENCHMARKS.md).
func BenchmarkAPIGet(b *testing.B) {
	for _, tier := range []string{"L1", "Redis"} {
		b.Run(tier, func(b *testing.B) {
			cfg := stackConfig{}
			if tier == "L1" {
				cfg.L1Size = 10000
			}
			st := newStack(b, cfg)
			a := newTestAPI(b, st, nil)
			body := `{"name":"Desk lamp","price":3499,"sku":"LAMP-1","description":"A small lamp with a long cord and a heavy base.","tags":["home","light"]}`
			want(b, call(b, a, "PUT", "/api/products/p1", body, auth...), 201)
			stored := []byte(want(b, call(b, a, "GET", "/api/products/p1", ""), 200))
			mux := http.NewServeMux()
			mux.Handle("/api/", a)
			srv := newTestServer(b, mux, ServerOptions{})

			var bare http.Handler
			if tier == "L1" {
				bare = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "application/json")
					w.Write(stored)
				})
			} else {
				key := "bench:origin:" + strconv.FormatInt(time.Now().UnixNano(), 36)
				if err := st.RDB.Set(context.Background(), key, stored, time.Hour).Err(); err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { st.RDB.Del(context.Background(), key) })
				rdb := st.RDB.(*redis.Client)
				bare = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					v, err := rdb.Get(r.Context(), key).Bytes()
					if err != nil {
						http.Error(w, err.Error(), 500)
						return
					}
					w.Header().Set("Content-Type", "application/json")
					w.Write(v)
				})
			}
			sides := []*loadSide{newLoadSide(b, bare, stored), newLoadSide(b, srv.Handler(), stored)}
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
	url     string
	client  *http.Client
	body    []byte
	elapsed time.Duration
	cpu     time.Duration
	lat     []time.Duration
}

// processCPU is the user+system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (s *loadSide) cpuPerRequest() float64 {
	return float64(s.cpu.Microseconds()) / float64(len(s.lat))
}

const loadClients = 8

func newLoadSide(b *testing.B, h http.Handler, body []byte) *loadSide {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(l)
	tr := &http.Transport{MaxIdleConnsPerHost: loadClients, DisableCompression: true}
	b.Cleanup(func() { tr.CloseIdleConnections(); hs.Close() })
	s := &loadSide{url: "http://" + l.Addr().String() + "/api/products/p1", client: &http.Client{Transport: tr}, body: body}
	for range 200 { // warm the connections and the cache tiers
		if err := s.get(); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

func (s *loadSide) get() error {
	resp, err := s.client.Get(s.url)
	if err != nil {
		return err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || n != int64(len(s.body)) {
		return fmt.Errorf("got %d, %d bytes, %v", resp.StatusCode, n, err)
	}
	return nil
}

// round sends n requests from loadClients goroutines.
func (s *loadSide) round(b *testing.B, n int) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	start, cpu0 := time.Now(), processCPU()
	for range loadClients {
		wg.Go(func() {
			lat := make([]time.Duration, 0, n/loadClients)
			for range n / loadClients {
				t0 := time.Now()
				if err := s.get(); err != nil {
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

func (s *loadSide) percentile(p int) float64 {
	if len(s.lat) == 0 {
		return 0
	}
	slices.Sort(s.lat)
	return float64(s.lat[len(s.lat)*p/100].Microseconds())
}
