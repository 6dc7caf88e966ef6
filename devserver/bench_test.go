package devserver

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/assetctl/assetctl/bundler"
	"github.com/assetctl/assetctl/internal/testsvc"
)

// nowMS is the wall clock in milliseconds, the unit of the browser's
// performance.timeOrigin + performance.now().
func nowMS() float64 { return float64(time.Now().UnixMicro()) / 1000 }

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// armColourWatch makes window.__seen a promise of the time (ms since the
// epoch) at which the title's computed colour becomes want. It checks on
// every DOM mutation: the stylesheet swap removes the old <link> right
// after the new one has loaded, and the baseline sets a style attribute.
func armColourWatch(b *testing.B, ctx context.Context, want string) {
	b.Helper()
	js := fmt.Sprintf(`window.__seen = new Promise((resolve) => {
	  const el = document.querySelector(%q);
	  const check = () => getComputedStyle(el).color === %q;
	  if (check()) { resolve(performance.timeOrigin + performance.now()); return; }
	  const mo = new MutationObserver(() => {
	    if (check()) { mo.disconnect(); resolve(performance.timeOrigin + performance.now()); }
	  });
	  mo.observe(document.documentElement, { subtree: true, childList: true, attributes: true });
	}); true`, benchSelector, want)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js)); err != nil {
		b.Fatal(err)
	}
}

func awaitSeen(b *testing.B, ctx context.Context) float64 {
	b.Helper()
	wctx, cancel := context.WithTimeout(ctx, browserDeadline)
	defer cancel()
	v, err := chromedp.Run(wctx, chromedp.Evaluate[float64](`window.__seen`, chromedp.EvalAwaitPromise))
	if err != nil {
		b.Fatalf("wait for the change in the browser: %v", err)
	}
	return v
}

// awaitShown waits for window.__shown, set by the page's script when it
// has run, across a reload, and returns it.
func awaitShown(b *testing.B, ctx context.Context) float64 {
	b.Helper()
	deadline := time.Now().Add(browserDeadline)
	for time.Now().Before(deadline) {
		ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
		v, err := chromedp.Run(ectx, chromedp.Evaluate[float64](`window.__shown || 0`))
		cancel()
		if err == nil && v > 0 {
			return v
		}
		time.Sleep(2 * time.Millisecond)
	}
	b.Fatal("page script did not run after the change")
	return 0
}

// benchSelector is the element of examples/site/index.html whose colour
// the CSS benchmark changes.
const benchSelector = ".hero h1"

// exampleDev serves a copy of examples/site built by the real bundler.
func exampleDev(b *testing.B, opts Options) *devServer {
	b.Helper()
	site := copyTree(b, "../examples/site")
	out := filepath.Join(b.TempDir(), "out")
	bl, err := bundler.New(bundler.Options{SiteDir: site, OutDir: out})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bl.Close() })
	opts.SiteDir, opts.OutDir, opts.Builder = site, out, bl
	opts.Watch.Debounce = DefaultDebounce
	return startDev(b, opts)
}

// BenchmarkLiveReload measures, in headless Chromium on examples/site built
// by the real bundler, the time from a file write to the browser showing
// the change, against a baseline measured in the same run with the same
// browser and page:
//   - css: the edited colour is the computed style (no reload); baseline:
//     the same kind of colour change made through CDP.
//   - js: the edited script has run in the reloaded page; baseline: a
//     reload asked for through CDP, observed the same way.
func BenchmarkLiveReload(b *testing.B) {
	b.Run("css", func(b *testing.B) {
		d := exampleDev(b, Options{})
		css, err := os.ReadFile(filepath.Join(d.Site, "css", "site.css"))
		if err != nil {
			b.Fatal(err)
		}
		ctx := testsvc.Chromium(b)
		if err := chromedp.Do(ctx, chromedp.Navigate(d.URL+"/")); err != nil {
			b.Fatal(err)
		}
		waitClientsB(b, d, 1)
		var dev, base, build []float64
		b.ResetTimer()
		for i := range b.N {
			// Dev server: write the stylesheet, wait for the colour.
			want := fmt.Sprintf("rgb(%d, %d, 0)", i%256, (i*7)%256)
			armColourWatch(b, ctx, want)
			t0 := nowMS()
			d.write(b, "css/site.css", string(css)+"\n"+benchSelector+" { color: "+want+"; }\n")
			dev = append(dev, awaitSeen(b, ctx)-t0)
			r := d.nextRebuild(b)
			if r.Action != ActionCSS {
				b.Fatalf("rebuild: got %v, want a stylesheet swap", r)
			}
			build = append(build, float64(r.Duration.Microseconds())/1000)

			// Baseline: the browser applying a colour change pushed to it
			// directly.
			want = fmt.Sprintf("rgb(%d, %d, 1)", i%256, (i*7)%256)
			armColourWatch(b, ctx, want)
			t0 = nowMS()
			if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`document.querySelector(%q).style.color = %q; true`, benchSelector, want))); err != nil {
				b.Fatal(err)
			}
			base = append(base, awaitSeen(b, ctx)-t0)
			if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`document.querySelector(%q).removeAttribute("style"); true`, benchSelector))); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		reportLatency(b, dev, base)
		b.ReportMetric(median(build), "build-ms-median")
	})
	b.Run("js", func(b *testing.B) {
		d := exampleDev(b, Options{})
		app, err := os.ReadFile(filepath.Join(d.Site, "js", "app.ts"))
		if err != nil {
			b.Fatal(err)
		}
		ctx := testsvc.Chromium(b)
		if err := chromedp.Do(ctx, chromedp.Navigate(d.URL+"/")); err != nil {
			b.Fatal(err)
		}
		clearShown := func() {
			if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__shown = 0; true`)); err != nil {
				b.Fatal(err)
			}
		}
		var dev, base, build []float64
		b.ResetTimer()
		for i := range b.N {
			waitClientsB(b, d, 1)
			clearShown()
			t0 := nowMS()
			d.write(b, "js/app.ts", string(app)+fmt.Sprintf("\n(window as any).__version = %d;\n(window as any).__shown = performance.timeOrigin + performance.now();\n", i))
			dev = append(dev, awaitShown(b, ctx)-t0)
			r := d.nextRebuild(b)
			if r.Action != ActionReload {
				b.Fatalf("rebuild: got %v, want a reload", r)
			}
			build = append(build, float64(r.Duration.Microseconds())/1000)

			waitClientsB(b, d, 1)
			clearShown()
			t0 = nowMS()
			if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`setTimeout(() => location.reload(), 0); true`)); err != nil {
				b.Fatal(err)
			}
			base = append(base, awaitShown(b, ctx)-t0)
		}
		b.StopTimer()
		reportLatency(b, dev, base)
		b.ReportMetric(median(build), "build-ms-median")
	})
}

func reportLatency(b *testing.B, dev, base []float64) {
	b.Helper()
	md, mb := median(dev), median(base)
	b.ReportMetric(md, "ms-median")
	b.ReportMetric(mb, "baseline-ms-median")
	if mb > 0 {
		b.ReportMetric(md/mb, "x-vs-baseline")
	}
	b.ReportMetric(0, "ns/op")
}

func waitClientsB(b *testing.B, d *devServer, n int) {
	b.Helper()
	deadline := time.Now().Add(browserDeadline)
	for d.Server.hub.count() != n {
		if time.Now().After(deadline) {
			b.Fatalf("live-reload clients: got %d, want %d", d.Server.hub.count(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// cpuTime is this process's user+system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIdleCPU measures the CPU the process uses over an idle interval
// with a dev server on examples/site running and one live-reload client
// connected, against the same process idle without the server. Each iteration is one 3s
// interval; run it with -benchtime=3x.
func BenchmarkIdleCPU(b *testing.B) {
	const interval = 3 * time.Second
	for _, mode := range []struct {
		name string
		poll bool
	}{{"inotify", false}, {"poll", true}} {
		b.Run(mode.name, func(b *testing.B) {
			var dev, base []float64
			for range b.N {
				c0 := cpuTime(b)
				time.Sleep(interval)
				base = append(base, 100*float64(cpuTime(b)-c0)/float64(interval))

				d := exampleDev(b, Options{Watch: WatchOptions{Poll: mode.poll}})
				resp, err := http.Get(d.URL + eventsPath)
				if err != nil {
					b.Fatal(err)
				}
				bufio.NewReader(resp.Body).ReadString('\n')
				waitClientsB(b, d, 1)
				c0 = cpuTime(b)
				time.Sleep(interval)
				dev = append(dev, 100*float64(cpuTime(b)-c0)/float64(interval))
				resp.Body.Close()
				if err := d.stop(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(median(dev), "cpu-%")
			b.ReportMetric(median(base), "baseline-cpu-%")
			b.ReportMetric(0, "ns/op")
		})
	}
}
