package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/assetctl/assetctl/internal/testsvc"
)

// TestServeBareHelperProcess is not a test: BenchmarkServePage runs the
// test binary through it as the baseline server, a bare net/http handler
// writing fixed bytes with the page's headers.
func TestServeBareHelperProcess(t *testing.T) {
	addr, file := os.Getenv("ASSETCTL_TEST_BARE_ADDR"), os.Getenv("ASSETCTL_TEST_BARE_BODY")
	if addr == "" {
		return
	}
	body, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var header http.Header
	if err := json.Unmarshal([]byte(os.Getenv("ASSETCTL_TEST_BARE_HEADER")), &header); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range header {
			w.Header()[k] = v
		}
		_, _ = w.Write(body)
	})
	fmt.Fprintln(os.Stderr, http.ListenAndServe(addr, h))
	os.Exit(1)
}

// wrkResult is one wrk run.
type wrkResult struct {
	rps      float64
	p50, p99 time.Duration
	errors   string
}

var (
	wrkRPS     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkLatency = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
	wrkErrors  = regexp.MustCompile(`(?m)^\s+(Socket errors:.*|Non-2xx or 3xx responses:.*)$`)
)

func runWrk(b *testing.B, url string, d time.Duration) wrkResult {
	b.Helper()
	bin := testsvc.Binary(b, "wrk", "apt-get install -y wrk")
	out, err := exec.Command(bin, "-t2", "-c32", "-d"+d.String(), "--latency", url).CombinedOutput()
	if err != nil {
		b.Fatalf("wrk %s: %v\n%s", url, err, out)
	}
	var r wrkResult
	m := wrkRPS.FindSubmatch(out)
	if m == nil {
		b.Fatalf("wrk output has no Requests/sec:\n%s", out)
	}
	r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	for _, m := range wrkLatency.FindAllSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(string(m[2]), 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[string(m[3])]
		d := time.Duration(v * float64(unit))
		if string(m[1]) == "50" {
			r.p50 = d
		} else {
			r.p99 = d
		}
	}
	for _, m := range wrkErrors.FindAllSubmatch(out, -1) {
		r.errors += strings.TrimSpace(string(m[1])) + "; "
	}
	return r
}

// rssMiB reads a process's resident set size.
func rssMiB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// BenchmarkServePage: wrk on loopback against the example's product page
// (template with about ten asset tags, one document from the in-process
// cache tier) vs a bare net/http handler writing the same bytes (body and
// headers), both in
// child processes, alternating, three rounds of 10 s each; and the
// origin's peak RSS under that load. Run with -benchtime 1x.
func BenchmarkServePage(b *testing.B) {
	pg := testsvc.MachinePostgres(b)
	args := []string{"serve", exampleSite, "--catalog", pg.CreateDatabase(b, "bench_catalog")}
	for i := range 4 {
		args = append(args, "--shard", fmt.Sprintf("s%d=%s", i, pg.CreateDatabase(b, fmt.Sprintf("bench_s%d", i))))
	}
	dist := filepath.Join(b.TempDir(), "dist")
	var stderr bytes.Buffer
	if code := Run(b.Context(), []string{"build", exampleSite, "-o", dist}, strings.NewReader(""), io.Discard, &stderr); code != 0 {
		b.Fatalf("build: %s", stderr.String())
	}
	_, prefix := testsvc.Redis(b)
	addr := testsvc.Addr(testsvc.FreePort(b))
	args = append(args, "--addr", addr, "--manifest", dist, "--cdn-url", "https://cdn.example.com/site/",
		"--redis", testsvc.SharedRedisAddr, "--cache-prefix", prefix, "--l1")
	origin := exec.Command(os.Args[0], "-test.run=^TestServeHelperProcess$")
	origin.Env = append(os.Environ(), "ASSETCTL_TEST_SERVE_ARGS="+strings.Join(args, "\x1f"))
	// The access log goes to a file, as it would in production.
	logFile, err := os.Create(filepath.Join(b.TempDir(), "origin.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer logFile.Close()
	origin.Stderr = logFile
	if err := origin.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = origin.Process.Signal(syscall.SIGTERM)
		_ = origin.Wait()
	})
	base := "http://" + addr
	for i := 0; ; i++ {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if i > 1200 {
			log, _ := os.ReadFile(logFile.Name())
			b.Fatalf("origin did not start:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	req, _ := http.NewRequest(http.MethodPut, base+"/api/products/p1", strings.NewReader(`{"name":"Oak Lamp","description":"A lamp of oak, for every day.","price":"€12.00","category":"home","stock":3,"tags":["new","eco"]}`))
	req.Header.Set("Authorization", "Bearer "+testToken)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode/100 != 2 {
		b.Fatalf("create product: %v %v", err, resp)
	}
	page := base + "/products/p1"
	resp, err := http.Get(page)
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	tags := strings.Count(string(body), "https://cdn.example.com/site/")
	bodyFile := filepath.Join(b.TempDir(), "page.html")
	if err := os.WriteFile(bodyFile, body, 0o644); err != nil {
		b.Fatal(err)
	}
	// The baseline writes the same response: the page's bytes and every
	// header the origin sent (Date aside, which net/http writes itself).
	resp.Header.Del("Date")
	header, _ := json.Marshal(resp.Header)
	bareAddr := testsvc.Addr(testsvc.FreePort(b))
	bare := exec.Command(os.Args[0], "-test.run=^TestServeBareHelperProcess$")
	bare.Env = append(os.Environ(), "ASSETCTL_TEST_BARE_ADDR="+bareAddr, "ASSETCTL_TEST_BARE_BODY="+bodyFile, "ASSETCTL_TEST_BARE_HEADER="+string(header))
	if err := bare.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bare.Process.Kill(); _ = bare.Wait() })
	if err := testsvc.WaitTCP(bareAddr, 10*time.Second); err != nil {
		b.Fatal(err)
	}

	// Warm both (JIT-free, but pools, L1 and page buffers fill).
	runWrk(b, page, 2*time.Second)
	runWrk(b, "http://"+bareAddr+"/", 2*time.Second)

	var peak float64
	var mu sync.Mutex
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if r := rssMiB(origin.Process.Pid); r > 0 {
				mu.Lock()
				peak = max(peak, r)
				mu.Unlock()
			}
		}
	}()
	b.ResetTimer()
	// Short alternating rounds, so a neighbour's burst of CPU (the machine
	// is shared) hits both sides alike; medians of each figure.
	const rounds = 9
	var ratios, orps, brps []float64
	var op50, op99, bp50, bp99 []time.Duration
	for round := range rounds {
		bb := runWrk(b, "http://"+bareAddr+"/", 3*time.Second)
		o := runWrk(b, page, 3*time.Second)
		if o.errors != "" || bb.errors != "" {
			b.Errorf("round %d: wrk errors: origin %q, bare %q", round, o.errors, bb.errors)
		}
		ratios, orps, brps = append(ratios, o.rps/bb.rps), append(orps, o.rps), append(brps, bb.rps)
		op50, op99, bp50, bp99 = append(op50, o.p50), append(op99, o.p99), append(bp50, bb.p50), append(bp99, bb.p99)
		b.Logf("round %d: origin %.0f req/s (p50 %v, p99 %v), bare %.0f req/s (p50 %v, p99 %v), ratio %.2f",
			round, o.rps, o.p50, o.p99, bb.rps, bb.p50, bb.p99, o.rps/bb.rps)
	}
	b.StopTimer()
	close(stop)
	mu.Lock()
	defer mu.Unlock()
	b.ReportMetric(median(ratios), "ratio-median")
	b.ReportMetric(median(orps), "origin-req/s")
	b.ReportMetric(median(brps), "bare-req/s")
	b.ReportMetric(float64(median(op50).Microseconds()), "origin-p50-µs")
	b.ReportMetric(float64(median(op99).Microseconds()), "origin-p99-µs")
	b.ReportMetric(float64(median(bp50).Microseconds()), "bare-p50-µs")
	b.ReportMetric(float64(median(bp99).Microseconds()), "bare-p99-µs")
	b.ReportMetric(peak, "origin-peak-RSS-MiB")
	b.ReportMetric(float64(len(body)), "page-bytes")
	b.ReportMetric(float64(tags), "cdn-urls")
}

func median[T float64 | time.Duration](v []T) T {
	s := append([]T(nil), v...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
