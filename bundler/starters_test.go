package bundler

import (
	"context"
	"flag"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/assetctl/assetctl/internal/testsvc"
	"github.com/assetctl/assetctl/manifest"
)

// starters picks the Vite starters TestViteStarters builds: `make test`
// runs the default subset (one per framework family, TypeScript and JSX
// both covered), `make test-starters` passes -starters=all.
var starters = flag.String("starters", "vanilla-ts,react-ts,preact,lit-ts",
	"comma-separated Vite templates TestViteStarters builds, or all")

// allStarters are the official templates without a framework compiler
// plugin (issue 10): Vue and Svelte single-file components are out.
var allStarters = []string{"vanilla", "vanilla-ts", "react", "react-ts", "preact", "preact-ts", "lit", "lit-ts"}

// TestViteStarters generates each official Vite starter with npm create
// vite, builds it with zero configuration, and loads it in headless
// Chromium: no console error or exception, every image loaded, and the
// counter button counts.
func TestViteStarters(t *testing.T) {
	names := strings.Split(*starters, ",")
	if *starters == "all" {
		names = allStarters
	}
	browser := testsvc.Chromium(t)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			site := testsvc.ViteStarter(t, name)
			out := filepath.Join(t.TempDir(), "dist")
			b, err := New(Options{SiteDir: site, OutDir: out})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			m, err := b.Build(context.Background())
			if err != nil {
				t.Fatalf("build %s: %v", name, err)
			}
			checkOutput(t, out, m)
			checkStarterManifest(t, m, b.Omitted())
			srv := httptest.NewServer(http.FileServer(http.Dir(out)))
			defer srv.Close()
			checkStarterInBrowser(t, browser, srv.URL+"/")
		})
	}
}

// checkStarterManifest: public/ files keep their names and stay mutable;
// repository files are left out and reported.
func checkStarterManifest(t *testing.T, m *manifest.Manifest, omitted []string) {
	t.Helper()
	for _, pub := range []string{"favicon.svg", "icons.svg"} {
		f, ok := m.Files[pub]
		if !ok || f.Path != pub || f.Immutable || f.Kind != manifest.KindStatic {
			t.Errorf("%s: got %+v, want a mutable static file under its own name", pub, f)
		}
	}
	for key, f := range m.Files {
		base := filepath.Base(key)
		if strings.HasPrefix(base, "README") || strings.HasPrefix(base, "tsconfig") ||
			strings.HasPrefix(base, "vite.config") || base == "package.json" || strings.HasSuffix(base, ".md") {
			t.Errorf("%s published as %s: want it left out", key, f.Path)
		}
	}
	for _, o := range omitted {
		if strings.HasPrefix(o, "src/") && !strings.HasSuffix(o, ".d.ts") {
			t.Errorf("%s left out: the app uses it", o)
		}
	}
}

// checkStarterInBrowser opens url and checks the page as a person sees it.
func checkStarterInBrowser(t *testing.T, browser context.Context, url string) {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil { // the tab must exist before Console subscribes
		t.Fatalf("open a tab: %v", err)
	}
	var mu sync.Mutex
	var problems []string
	consoleCtx, stopConsole := context.WithCancel(ctx)
	messages := chromedp.Console(consoleCtx) // subscribes now, before the page loads
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				mu.Lock()
				problems = append(problems, m.String())
				mu.Unlock()
			}
		}
	}()
	if _, err := chromedp.Run(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	const findButton = `(() => {
		const find = (root) => {
			for (const el of root.querySelectorAll("*")) {
				if (el.tagName === "BUTTON" && /count is/i.test(el.textContent)) return el;
				if (el.shadowRoot) { const f = find(el.shadowRoot); if (f) return f; }
			}
			return null;
		};
		return find(document);
	})()`
	const images = `(() => {
		const all = [];
		const walk = (root) => { for (const el of root.querySelectorAll("*")) {
			if (el.tagName === "IMG") all.push(el);
			if (el.shadowRoot) walk(el.shadowRoot);
		} };
		walk(document);
		return all.length > 0 && all.every((i) => i.complete && i.naturalWidth > 0);
	})()`
	report := func() {
		stopConsole()
		<-done
		for _, p := range problems {
			t.Errorf("%s: %s", url, p)
		}
	}
	wait := func(expr string) {
		t.Helper()
		if err := testsvc.PollJS(ctx, expr); err != nil {
			report()
			t.Fatal(err)
		}
	}
	wait(findButton + ` !== null`)
	wait(images)
	if got := evalString(t, ctx, findButton+`.textContent.trim()`); !strings.EqualFold(got, "count is 0") {
		t.Fatalf("counter before clicking: got %q, want %q", got, "Count is 0")
	}
	for range 2 {
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](findButton+`.click()`)); err != nil {
			t.Fatalf("click the counter: %v", err)
		}
	}
	wait(`/count is 2/i.test(` + findButton + `.textContent)`)
	favicon := evalString(t, ctx, `fetch("/favicon.svg").then(r => r.status + " " + r.headers.get("content-type"))`)
	if !strings.HasPrefix(favicon, "200 image/svg+xml") {
		t.Errorf("/favicon.svg: got %q, want 200 image/svg+xml", favicon)
	}
	report()
}

func evalString(t *testing.T, ctx context.Context, expr string) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func chromedpNavigate(ctx context.Context, url string) error {
	_, err := chromedp.Run(ctx, chromedp.Navigate(url))
	return err
}

func chromedpClick(ctx context.Context, sel string) error {
	_, err := chromedp.Run(ctx, chromedp.Evaluate[any](`document.querySelector(`+strconv.Quote(sel)+`).click()`))
	return err
}
