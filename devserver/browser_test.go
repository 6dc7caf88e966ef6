package devserver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/assetctl/assetctl/bundler"
	"github.com/assetctl/assetctl/internal/testsvc"
)

// browserDeadline bounds every wait on browser state. It is a correctness
// deadline: only a broken reload path takes anywhere near it.
const browserDeadline = testsvc.JSDeadline

func evalJS[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitClients waits until n live-reload clients are connected, so a change
// made next is announced to them rather than found on connect.
func waitClients(t *testing.T, d *devServer, n int) {
	t.Helper()
	deadline := time.Now().Add(browserDeadline)
	for d.Server.hub.count() != n {
		if time.Now().After(deadline) {
			t.Fatalf("live-reload clients: got %d, want %d", d.Server.hub.count(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const (
	overlayText  = `(document.getElementById("__assetctl_error_overlay")?.shadowRoot?.textContent ?? "")`
	titleColor   = `getComputedStyle(document.getElementById("title")).color`
	outText      = `document.getElementById("out").textContent`
	styleSheets  = `document.querySelectorAll('link[rel="stylesheet"]').length`
	noNavigation = `window.marker === "still here"`
)

// bundlerDev starts a dev server on a copy of testdata/bundled built by the
// real bundler, the pipeline of `assetctl build`: hashed names, SRI, esbuild.
func bundlerDev(t testing.TB) *devServer {
	t.Helper()
	site := copyTree(t, "testdata/bundled")
	out := filepath.Join(t.TempDir(), "out")
	b, err := bundler.New(bundler.Options{SiteDir: site, OutDir: out})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return startDev(t, Options{SiteDir: site, OutDir: out, Builder: b})
}

// liveReloadSite says how to edit one fixture site.
type liveReloadSite struct {
	dev                func(testing.TB) *devServer
	script             func(version string) string // a working js/app.js
	broken             string                      // a js/app.js with a syntax error
	brokenAt, brokenIn string                      // its position and source line
	brokenText         string
	importedCSS        string // a stylesheet imported by the script, if any
}

func TestBrowserLiveReload(t *testing.T) {
	t.Run("copy builder", func(t *testing.T) {
		testLiveReload(t, liveReloadSite{
			dev: func(t testing.TB) *devServer { return startDev(t, Options{}) },
			script: func(v string) string {
				return fmt.Sprintf("document.getElementById(\"out\").textContent = %q;\n", v)
			},
			broken:   "// app\nconst out = document.getElementById(\"out\");\nout.textContent = ;\n",
			brokenAt: "js/app.js:3:19", brokenIn: "out.textContent = ;", brokenText: `Unexpected ";"`,
		})
	})
	t.Run("bundler", func(t *testing.T) {
		testLiveReload(t, liveReloadSite{
			dev: bundlerDev,
			script: func(v string) string {
				return fmt.Sprintf("import \"./widgets.css\";\nimport { label } from \"./label.js\";\ndocument.getElementById(\"out\").textContent = %q;\n", v)
			},
			broken:   "import \"./widgets.css\";\nconst out = document.getElementById(\"out\");\nout.textContent = label(;\n",
			brokenAt: "js/app.js:3:25", brokenIn: "out.textContent = label(;", brokenText: `Unexpected ";"`,
			importedCSS: "js/widgets.css",
		})
	})
}

func testLiveReload(t *testing.T, site liveReloadSite) {
	d := site.dev(t)
	ctx := testsvc.Chromium(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(d.URL+"/")); err != nil {
		t.Fatalf("open page: %v", err)
	}
	testsvc.WaitJS(t, ctx, outText+` === "version 1"`)
	if got := evalJS[string](t, ctx, titleColor); got != "rgb(255, 0, 0)" {
		t.Fatalf("initial colour: got %q, want rgb(255, 0, 0)", got)
	}
	waitClients(t, d, 1)
	sheets := evalJS[int](t, ctx, styleSheets)

	t.Run("css change swaps the stylesheet without a reload", func(t *testing.T) {
		evalJS[string](t, ctx, `window.marker = "still here"`)
		old, _ := os.ReadFile(filepath.Join(d.Site, "css", "site.css"))
		d.write(t, "css/site.css", strings.Replace(string(old), "rgb(255, 0, 0)", "rgb(0, 0, 255)", 1))
		testsvc.WaitJS(t, ctx, titleColor+` === "rgb(0, 0, 255)"`)
		if !evalJS[bool](t, ctx, noNavigation) {
			t.Fatal("window.marker: got it gone, want the page not reloaded")
		}
		// The old <link> goes once the new one has loaded.
		testsvc.WaitJS(t, ctx, styleSheets+fmt.Sprintf(" === %d", sheets))
	})

	if site.importedCSS != "" {
		t.Run("css imported by a script swaps in place too", func(t *testing.T) {
			evalJS[string](t, ctx, `window.marker = "still here"`)
			d.write(t, site.importedCSS, "#out { color: rgb(0, 128, 0); }\n")
			testsvc.WaitJS(t, ctx, `getComputedStyle(document.getElementById("out")).color === "rgb(0, 128, 0)"`)
			if !evalJS[bool](t, ctx, noNavigation) {
				t.Fatal("window.marker: got it gone, want the page not reloaded")
			}
			testsvc.WaitJS(t, ctx, styleSheets+fmt.Sprintf(" === %d", sheets))
		})
	}

	t.Run("script change reloads with the new behaviour", func(t *testing.T) {
		d.write(t, "js/app.js", site.script("version 2"))
		testsvc.WaitJS(t, ctx, outText+` === "version 2"`)
		if evalJS[bool](t, ctx, `window.marker !== undefined`) {
			t.Fatal("window.marker: got it kept, want a fresh page after a script change")
		}
		if got := evalJS[string](t, ctx, titleColor); got != "rgb(0, 0, 255)" {
			t.Fatalf("colour after reload: got %q, want the edited rgb(0, 0, 255)", got)
		}
	})

	t.Run("broken script shows the overlay at its file and line", func(t *testing.T) {
		waitClients(t, d, 1)
		evalJS[string](t, ctx, `window.marker = "still here"`)
		d.write(t, "js/app.js", site.broken)
		testsvc.WaitJS(t, ctx, overlayText+fmt.Sprintf(`.includes(%q)`, site.brokenAt))
		text := evalJS[string](t, ctx, overlayText)
		if !strings.Contains(text, site.brokenText) || !strings.Contains(text, site.brokenIn) {
			t.Fatalf("overlay: got %q, want the message %q and the source line %q", text, site.brokenText, site.brokenIn)
		}
		if !evalJS[bool](t, ctx, noNavigation) {
			t.Fatal("window.marker: got it gone, want the broken build not to reload the page")
		}
		// A page opened while the build is broken shows the overlay too.
		tab, cancel := chromedp.NewContext(ctx)
		defer cancel()
		if err := chromedp.Do(tab, chromedp.Navigate(d.URL+"/")); err != nil {
			t.Fatal(err)
		}
		testsvc.WaitJS(t, tab, overlayText+fmt.Sprintf(`.includes(%q)`, site.brokenAt))
	})

	t.Run("fixing the script removes the overlay", func(t *testing.T) {
		d.write(t, "js/app.js", site.script("version 3"))
		testsvc.WaitJS(t, ctx, outText+` === "version 3"`)
		testsvc.WaitJS(t, ctx, overlayText+` === ""`)
	})
}

func TestBrowserReconnectsAfterRestart(t *testing.T) {
	site := copyTree(t, "testdata/site")
	addr := testsvc.Addr(testsvc.FreePort(t))
	first := startDevOn(t, Options{SiteDir: site}, addr)
	ctx := testsvc.Chromium(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(first.URL+"/")); err != nil {
		t.Fatalf("open page: %v", err)
	}
	testsvc.WaitJS(t, ctx, outText+` === "version 1"`)
	waitClients(t, first, 1)
	if err := first.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	// Edited while no server runs: the tab must catch up on reconnect.
	writeFiles(t, site, map[string]string{"js/app.js": "document.getElementById(\"out\").textContent = \"after restart\";\n"})
	startDevOn(t, Options{SiteDir: site}, addr)
	testsvc.WaitJS(t, ctx, outText+` === "after restart"`)
}

func TestBrowserTabsShareOneStream(t *testing.T) {
	d := startDev(t, Options{})
	browser := testsvc.Chromium(t) // its own tab stays blank
	first, closeFirst := chromedp.NewContext(browser)
	defer closeFirst()
	second, closeSecond := chromedp.NewContext(browser)
	defer closeSecond()
	third, closeThird := chromedp.NewContext(browser)
	defer closeThird()
	for _, tab := range []context.Context{first, second, third} {
		if err := chromedp.Do(tab, chromedp.Navigate(d.URL+"/")); err != nil {
			t.Fatalf("open page: %v", err)
		}
		testsvc.WaitJS(t, tab, outText+` === "version 1"`)
	}
	waitClients(t, d, 1)
	for _, tab := range []context.Context{first, second, third} {
		evalJS[string](t, tab, `window.marker = "still here"`)
	}

	d.write(t, "css/site.css", "h1 { color: rgb(0, 0, 255); }\n")
	for i, tab := range []context.Context{first, second, third} {
		testsvc.WaitJS(t, tab, titleColor+` === "rgb(0, 0, 255)"`)
		if !evalJS[bool](t, tab, noNavigation) {
			t.Fatalf("tab %d: got it reloaded, want the stylesheet swapped in place", i)
		}
	}
	if got := d.Server.hub.count(); got != 1 {
		t.Fatalf("event streams for 3 tabs: got %d, want 1", got)
	}

	// Whichever tab holds the stream, closing the first one leaves the
	// others informed: a script change still reloads both.
	if err := chromedp.Cancel(first); err != nil {
		t.Fatalf("close first tab: %v", err)
	}
	waitClients(t, d, 1)
	d.write(t, "js/app.js", "document.getElementById(\"out\").textContent = \"version 2\";\n")
	for _, tab := range []context.Context{second, third} {
		testsvc.WaitJS(t, tab, outText+` === "version 2"`)
	}
}
