package devserver

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/assetctl/assetctl/bundler"
	"github.com/assetctl/assetctl/internal/testsvc"
)

// TestBrowserViteProject: a Vite-style project in dev mode serves public/
// files at the root, gives code import.meta.env with MODE=development,
// DEV=true and the .env.development variables, and a change under public/
// reloads the page.
func TestBrowserViteProject(t *testing.T) {
	site := t.TempDir()
	for name, content := range map[string]string{
		"index.html":         `<!doctype html><link rel="icon" href="/favicon.svg"><p id="out"></p><script type="module" src="/src/main.js"></script>`,
		"src/main.js":        `document.getElementById("out").textContent = [import.meta.env.MODE, import.meta.env.DEV, import.meta.env.PROD, import.meta.env.VITE_GREETING].join(" ")`,
		".env":               "VITE_GREETING=hi\n",
		".env.development":   "VITE_GREETING=hi-dev\n",
		"public/favicon.svg": "<svg xmlns='http://www.w3.org/2000/svg'/>",
		"public/data.txt":    "v1",
	} {
		p := filepath.Join(site, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "out")
	b, err := bundler.New(bundler.Options{SiteDir: site, OutDir: out, Mode: bundler.ModeDevelopment})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	d := startDev(t, Options{SiteDir: site, OutDir: out, Builder: b})
	ctx := testsvc.Chromium(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(d.URL+"/")); err != nil {
		t.Fatalf("open page: %v", err)
	}
	testsvc.WaitJS(t, ctx, outText+` === "development true false hi-dev"`)
	fetchText := func(p string) string {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`fetch("`+p+`").then(r => r.status + " " + r.headers.get("content-type").split(";")[0])`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("fetch %s: %v", p, err)
		}
		return v
	}
	if got := fetchText("/favicon.svg"); got != "200 image/svg+xml" {
		t.Errorf("/favicon.svg: got %q, want 200 image/svg+xml", got)
	}
	waitClients(t, d, 1)
	evalJS[string](t, ctx, `window.marker = "still here"`)
	d.write(t, "public/data.txt", "v2")
	testsvc.WaitJS(t, ctx, `window.marker === undefined`)
	testsvc.WaitJS(t, ctx, outText+` === "development true false hi-dev"`)
	body, err := chromedp.Run(ctx, chromedp.Evaluate[string](`fetch("/data.txt").then(r => r.text())`, chromedp.EvalAwaitPromise))
	if err != nil || body != "v2" {
		t.Errorf("/data.txt after the change: got %q, %v, want v2", body, err)
	}
}
