package cli

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/assetctl/assetctl/internal/testsvc"
)

// cdnVCL is a CDN edge in front of the bucket: it keeps what S3's
// Cache-Control allows and adds the CORS header a CDN serving a site's
// assets to pages on another origin sends (module scripts with integrity
// and crossorigin="anonymous", and fonts, are CORS requests).
const cdnVCL = `vcl 4.1;
backend s3 { .host = "127.0.0.1"; .port = "%PORT%"; }
sub vcl_deliver {
  set resp.http.Access-Control-Allow-Origin = "*";
  set resp.http.Timing-Allow-Origin = "*";
  if (obj.hits > 0) { set resp.http.X-Cache = "HIT"; } else { set resp.http.X-Cache = "MISS"; }
}
`

// startCDN deploys the example's build to a versitygw bucket readable
// anonymously and puts a Varnish edge in front; it returns the build
// directory, the edge and the CDN base URL of the deploy.
func startCDN(t *testing.T) (dist string, s3 *testsvc.S3, edge *testsvc.Varnish, cdnURL string) {
	t.Helper()
	s3 = edgeSite(t)
	dist = buildExample(t)
	if code, _, stderr := run(t, "deploy", dist, "--bucket", "s3://"+testBucket+"/site", "--endpoint", s3.Endpoint); code != 0 {
		t.Fatalf("assetctl deploy: %s", stderr)
	}
	_, port, _ := strings.Cut(strings.TrimPrefix(s3.Endpoint, "http://"), ":")
	edge = testsvc.StartVarnishVCL(t, strings.ReplaceAll(cdnVCL, "%PORT%", port))
	return dist, s3, edge, edge.URL + "/" + testBucket + "/site/"
}

// Headless Chromium loads a product page from the origin while every asset
// comes from the Varnish edge in front of versitygw, another origin: each
// asset and the dynamic-import chunk load, SRI and crossorigin pass, the
// console stays clean, and the CSP blocks an inline script without the
// nonce while one with it runs.
func TestServeInChromium(t *testing.T) {
	data := newServeData(t)
	_, s3, _, cdnURL := startCDN(t)
	_, prefix := testsvc.Redis(t)
	s := startServe(t, exampleSite, append(data.args(), "--manifest", "s3://"+testBucket+"/site", "--endpoint", s3.Endpoint,
		"--cdn-url", cdnURL, "--redis", testsvc.SharedRedisAddr, "--cache-prefix", prefix)...)
	putDoc(t, s.URL, "products", "p1", `{"name":"Oak Lamp","description":"A lamp.","price":"€12.00","category":"home","stock":3,"tags":["new"]}`)

	ctx := testsvc.Chromium(t)
	var mu sync.Mutex
	var msgs []chromedp.ConsoleMessage
	cctx, stopConsole := context.WithCancel(ctx)
	defer stopConsole()
	console := chromedp.Console(cctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			mu.Lock()
			msgs = append(msgs, m)
			mu.Unlock()
		}
	}()
	// What the network saw: each URL's status, and every failed load.
	status := map[string]int64{}
	urls := map[network.RequestID]string{}
	var failed []string
	if err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			urls[ev.RequestID] = ev.Request.URL
		case *network.EventResponseReceived:
			status[ev.Response.URL] = ev.Response.Status
		case *network.EventLoadingFailed:
			failed = append(failed, fmt.Sprintf("%s: %s %s", urls[ev.RequestID], ev.ErrorText, ev.BlockedReason))
		}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Navigate(s.URL+"/products/p1")); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	testsvc.WaitJS(t, ctx, `document.readyState === "complete" && document.fonts.status === "loaded"`)
	if _, err := chromedp.Run(ctx, chromedp.Click(chromedp.CSS("#open-gallery"))); err != nil {
		t.Fatalf("click #open-gallery: %v", err)
	}
	testsvc.WaitJS(t, ctx, `document.querySelectorAll("#gallery > div").length === 3`)

	// Every resource the page used, with the status the browser saw.
	type resource struct {
		Name   string `json:"name"`
		Status int    `json:"status"`
		Type   string `json:"type"`
	}
	res := evalJS[[]resource](t, ctx, `performance.getEntriesByType("resource").map(e => ({name: e.name, type: e.initiatorType}))`)
	time.Sleep(200 * time.Millisecond) // let late events and console messages arrive
	mu.Lock()
	for i := range res {
		res[i].Status = int(status[res[i].Name])
	}
	for _, f := range failed {
		t.Errorf("failed load: %s", f)
	}
	mu.Unlock()
	want := map[string]bool{"/js/app.": false, "/chunks/gallery.": false, "/css/site.": false, "/img/logo.": false, "/img/hero.": false, "/fonts/dejavu-sans.": false}
	for _, r := range res {
		if !strings.HasPrefix(r.Name, cdnURL) {
			if !strings.HasPrefix(r.Name, s.URL) {
				t.Errorf("resource %s: neither the CDN nor the origin", r.Name)
			}
			continue
		}
		if r.Status != 200 {
			t.Errorf("resource %s: got status %d, want 200", r.Name, r.Status)
		}
		for k := range want {
			if strings.Contains(r.Name, k) {
				want[k] = true
			}
		}
	}
	for k, seen := range want {
		if !seen {
			t.Errorf("no %s* loaded from the CDN %s; resources: %+v", k, cdnURL, res)
		}
	}
	// SRI and crossorigin were on the tags the browser honoured.
	if n := evalJS[int](t, ctx, `document.querySelectorAll('script[type=module][integrity^="sha"][crossorigin=anonymous][nonce]').length`); n < 1 {
		t.Errorf("module scripts with integrity, crossorigin and nonce: got %d, want at least 1\n%s", n, evalJS[string](t, ctx, `[...document.scripts].map(s => s.outerHTML).join("\n")`))
	}
	mu.Lock()
	for _, m := range msgs {
		if m.Type == chromedp.ConsoleError || m.IsException() {
			t.Errorf("console: %s (%s:%d)", m, m.URL, m.Line)
		}
	}
	mu.Unlock()

	// The CSP: an inline script without the nonce is refused, one with
	// the page's nonce runs.
	type cspResult struct {
		Without  bool   `json:"without"`
		With     bool   `json:"with"`
		Violated string `json:"violated"`
	}
	got, err := chromedp.Run(ctx, chromedp.Evaluate[cspResult](`new Promise(resolve => {
		let violated = "";
		document.addEventListener("securitypolicyviolation", e => { violated = e.effectiveDirective; });
		const bad = document.createElement("script");
		bad.textContent = "window.__inlineWithout = true";
		document.body.append(bad);
		const good = document.createElement("script");
		good.nonce = document.querySelector("script[nonce]").nonce;
		good.textContent = "window.__inlineWith = true";
		document.body.append(good);
		setTimeout(() => resolve({without: !!window.__inlineWithout, with: !!window.__inlineWith, violated}), 300);
	})`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("CSP check: %v", err)
	}
	if got.Without || !got.With || !strings.HasPrefix(got.Violated, "script-src") {
		t.Errorf("CSP: got inline without nonce ran=%v, with nonce ran=%v, violation %q; want false, true, script-src*", got.Without, got.With, got.Violated)
	}
}

func evalJS[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}
