package testsvc

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumAllocator returns a chromedp allocator context that starts the
// machine's headless Chromium with a fresh profile in a temp dir. The
// browser is stopped when the test ends.
func ChromiumAllocator(t testing.TB) context.Context {
	t.Helper()
	bin := Binary(t, "chromium", "apt-get install -y chromium")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true), // tests run as root
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("no-default-browser-check", true),
		// A tab in the background must still run timers and reload at once.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
	}
	ctx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	return ctx
}

// Chromium starts a headless Chromium (see ChromiumAllocator) and returns
// the chromedp context of its first tab. chromedp.NewContext on the result
// opens more tabs in the same browser.
func Chromium(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(ChromiumAllocator(t))
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v (install it with `apt-get install -y chromium`)", err)
	}
	return ctx
}

// JSDeadline bounds PollJS. It is a correctness bound, not a speed
// assertion: a working page is nowhere near it.
const JSDeadline = 30 * time.Second

// PollJS evaluates expr in the page of ctx until it is true, for at most
// JSDeadline. It polls from Go, not with chromedp.Poll, so a wait may span
// page reloads; each evaluation gets 5 s, so a reload in progress cannot
// hang it.
func PollJS(ctx context.Context, expr string) error {
	deadline := time.Now().Add(JSDeadline)
	for {
		evalCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ok, err := chromedp.Run(evalCtx, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %v for %s: still false (last error: %v)", JSDeadline, expr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitJS is PollJS that fails the test when expr never becomes true.
func WaitJS(t testing.TB, ctx context.Context, expr string) {
	t.Helper()
	if err := PollJS(ctx, expr); err != nil {
		t.Fatal(err)
	}
}
