package origin

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/assetctl/assetctl/manifest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// writeBuild writes version v of the test manifest into dir the way a
// build replaces it: a new file renamed over the old one. Version v has
// build ID "build-v" and css/site.css at css/site.v<v>.css.
func writeBuild(t testing.TB, dir string, v int, edit func(*manifest.Manifest)) {
	t.Helper()
	m := testManifest(t)
	m.BuildID = fmt.Sprintf("build-%d", v)
	f := m.Files["css/site.css"]
	f.Path = fmt.Sprintf("css/site.v%d.css", v)
	m.Files["css/site.css"] = f
	if edit != nil {
		edit(m)
	}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	writeFileAtomic(t, filepath.Join(dir, manifest.FileName), data)
}

func writeFileAtomic(t testing.TB, p string, data []byte) {
	t.Helper()
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

func newTestLive(t *testing.T, dir string, check func(*Assets) error, reg prometheus.Registerer) *Live {
	t.Helper()
	l, err := NewLive(t.Context(), DirSource(dir), LiveOptions{CDNURL: testCDN, Check: check, Registerer: reg, PollInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// pageServer renders index.html with the request's pinned snapshot.
func pageServer(t *testing.T, l *Live, tm *Templates, hold func()) *httptest.Server {
	t.Helper()
	h := l.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := AssetsFrom(r.Context())
		if hold != nil {
			hold()
		}
		if err := tm.Render(w, "index.html", pageData{Title: "t"}, RenderContext{Assets: a, Nonce: "bm9uY2U="}); err != nil {
			http.Error(w, err.Error(), 500)
		}
	}))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

var cssVersion = regexp.MustCompile(`css/site\.v(\d+)\.css`)
var bodyBuild = regexp.MustCompile(`window\.buildID = "([^"]+)"`)

// checkConsistent asserts one response is entirely of the build its
// X-Build-ID names, and returns that build.
func checkConsistent(t *testing.T, resp *http.Response) string {
	t.Helper()
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status %d: %s", resp.StatusCode, body)
		return ""
	}
	id := resp.Header.Get("X-Build-ID")
	bb := bodyBuild.FindSubmatch(body)
	vs := cssVersion.FindAllSubmatch(body, -1)
	if bb == nil || string(bb[1]) != id || len(vs) == 0 {
		t.Errorf("X-Build-ID %s, body build %q, %d CSS URLs", id, bb, len(vs))
		return id
	}
	for _, v := range vs {
		if "build-"+string(v[1]) != id {
			t.Errorf("response of %s holds the URL of build-%s", id, v[1])
		}
	}
	return id
}

// TestLiveSwapUnderLoad: requests run while builds are swapped in by the
// poller; every response is of exactly one build, none fails, and the
// last build is served at the end.
func TestLiveSwapUnderLoad(t *testing.T) {
	dir := t.TempDir()
	writeBuild(t, dir, 1, nil)
	a0, err := NewAssets(testManifest(t), testCDN)
	if err != nil {
		t.Fatal(err)
	}
	tm, err := LoadTemplates(filepath.Join("testdata", "templates"), a0)
	if err != nil {
		t.Fatal(err)
	}
	l := newTestLive(t, dir, tm.Check, nil)
	ctx, cancel := context.WithCancel(t.Context())
	var pollers sync.WaitGroup
	pollers.Go(func() { l.Run(ctx) })
	srv := pageServer(t, l, tm, nil)

	const builds = 20
	var seen sync.Map
	var stop atomic.Bool
	var clients sync.WaitGroup
	for range 4 {
		clients.Go(func() {
			for n := 0; n < 5000 && !stop.Load(); n++ {
				resp, err := srv.Client().Get(srv.URL)
				if err != nil {
					t.Error(err)
					return
				}
				seen.Store(checkConsistent(t, resp), true)
			}
		})
	}
	for v := 2; v <= builds; v++ {
		writeBuild(t, dir, v, nil)
		want := fmt.Sprintf("build-%d", v)
		for l.Current().BuildID() != want {
			time.Sleep(time.Millisecond)
		}
	}
	stop.Store(true)
	clients.Wait()
	cancel()
	pollers.Wait()
	n := 0
	seen.Range(func(any, any) bool { n++; return true })
	if n < 2 {
		t.Errorf("responses saw %d builds, want several", n)
	}
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if got := checkConsistent(t, resp); got != fmt.Sprintf("build-%d", builds) {
		t.Errorf("after the last swap: got %s, want build-%d", got, builds)
	}
}

// TestLiveRequestKeepsItsSnapshot: a request that started before a swap
// finishes on the manifest it started with.
func TestLiveRequestKeepsItsSnapshot(t *testing.T) {
	dir := t.TempDir()
	writeBuild(t, dir, 1, nil)
	l := newTestLive(t, dir, nil, nil)
	tm, err := LoadTemplates(filepath.Join("testdata", "templates"), l.Current())
	if err != nil {
		t.Fatal(err)
	}
	started, release := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	srv := pageServer(t, l, tm, func() {
		if first.CompareAndSwap(false, true) {
			close(started)
			<-release
		}
	})
	done := make(chan string)
	go func() {
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			t.Error(err)
			done <- ""
			return
		}
		done <- checkConsistent(t, resp)
	}()
	<-started
	writeBuild(t, dir, 2, nil)
	if err := l.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := l.Current().BuildID(); got != "build-2" {
		t.Fatalf("after Reload: current %s, want build-2", got)
	}
	close(release)
	if got := <-done; got != "build-1" {
		t.Errorf("the request in flight finished on %s, want build-1", got)
	}
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if got := checkConsistent(t, resp); got != "build-2" {
		t.Errorf("a new request got %s, want build-2", got)
	}
}

// TestLiveKeepsLastGood: malformed, unusable and template-breaking
// manifests are refused, logged and counted; the last good one serves on,
// and a rejected version is reported once, not on every poll.
func TestLiveKeepsLastGood(t *testing.T) {
	dir := t.TempDir()
	writeBuild(t, dir, 1, nil)
	tm, err := LoadTemplates(filepath.Join("testdata", "templates"), testAssets(t))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	l := newTestLive(t, dir, tm.Check, reg)
	poll := func() error {
		l.mu.Lock()
		etag := l.etag
		l.mu.Unlock()
		return l.reload(t.Context(), etag, false)
	}
	failures := func(reason string) float64 {
		return testutil.ToFloat64(l.failures.WithLabelValues(reason))
	}
	expect := func(step, build string, fetch, check, failing float64) {
		t.Helper()
		if got := l.Current().BuildID(); got != build {
			t.Errorf("%s: serving %s, want %s", step, got, build)
		}
		if f, c, g := failures("fetch"), failures("check"), testutil.ToFloat64(l.failing); f != fetch || c != check || g != failing {
			t.Errorf("%s: failures fetch %v check %v, failing %v; want %v %v %v", step, f, c, g, fetch, check, failing)
		}
	}

	writeFileAtomic(t, filepath.Join(dir, manifest.FileName), []byte(`{"version": 1, "buildID": `))
	if err := poll(); err == nil {
		t.Errorf("a malformed manifest was accepted")
	}
	expect("malformed", "build-1", 1, 0, 1)
	for range 3 {
		if err := poll(); err != nil {
			t.Errorf("polling an unchanged rejected manifest: %v", err)
		}
	}
	expect("malformed, polled again", "build-1", 1, 0, 1)
	if err := l.Reload(t.Context()); err == nil {
		t.Errorf("Reload accepted the malformed manifest")
	}
	expect("malformed, reloaded by hand", "build-1", 2, 0, 1)

	writeBuild(t, dir, 2, func(m *manifest.Manifest) { delete(m.Files, "img/logo.png") })
	err = poll()
	if err == nil || !strings.Contains(err.Error(), `index.html:5: asset "img/logo.png"`) {
		t.Errorf("a manifest without a used name: got %v, want the template error", err)
	}
	expect("missing a used name", "build-1", 2, 1, 1)

	if err := os.Remove(filepath.Join(dir, manifest.FileName)); err != nil {
		t.Fatal(err)
	}
	if err := poll(); err == nil {
		t.Errorf("a missing manifest was accepted")
	}
	expect("missing", "build-1", 3, 1, 1)

	writeBuild(t, dir, 3, nil)
	if err := poll(); err != nil {
		t.Fatal(err)
	}
	expect("good again", "build-3", 3, 1, 0)
	if got := testutil.ToFloat64(l.buildInfo.WithLabelValues("build-3")); got != 1 {
		t.Errorf("build info of build-3: %v, want 1", got)
	}
	if n := testutil.CollectAndCount(l.buildInfo); n != 1 {
		t.Errorf("build info has %d series, want 1", n)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP assetctl_origin_manifest_reload_failing 1 while the last reload failed, so an older manifest than the source's is served.
# TYPE assetctl_origin_manifest_reload_failing gauge
assetctl_origin_manifest_reload_failing 0
`), "assetctl_origin_manifest_reload_failing"); err != nil {
		t.Error(err)
	}
	if age := gaugeValue(t, reg, "assetctl_origin_manifest_age_seconds"); age < 0 || age > 60 {
		t.Errorf("manifest age %v s", age)
	}
}

func gaugeValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.Metric) == 1 {
			return mf.Metric[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestNewLiveFailsWithoutAGoodManifest(t *testing.T) {
	tm, err := LoadTemplates(filepath.Join("testdata", "templates"), testAssets(t))
	if err != nil {
		t.Fatal(err)
	}
	missing := t.TempDir()
	malformed := t.TempDir()
	writeFileAtomic(t, filepath.Join(malformed, manifest.FileName), []byte("{"))
	lacking := t.TempDir()
	writeBuild(t, lacking, 1, func(m *manifest.Manifest) { delete(m.Files, "js/app.ts") })
	for dir, want := range map[string]string{missing: "run assetctl build first", malformed: "invalid JSON", lacking: `entry "js/app.ts"`} {
		_, err := NewLive(t.Context(), DirSource(dir), LiveOptions{Check: tm.Check})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewLive: got %v, want an error containing %q", err, want)
		}
	}
	good := t.TempDir()
	writeBuild(t, good, 1, nil)
	reg := prometheus.NewRegistry()
	if _, err := NewLive(t.Context(), DirSource(good), LiveOptions{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewLive(t.Context(), DirSource(good), LiveOptions{Registerer: reg}); err == nil {
		t.Errorf("a second Live on one registry registered silently")
	}
}

func TestDirSourceETag(t *testing.T) {
	dir := t.TempDir()
	writeBuild(t, dir, 1, nil)
	src := DirSource(dir)
	m, etag, changed, err := src.Fetch(t.Context(), "")
	if err != nil || !changed || m.BuildID != "build-1" || etag == "" {
		t.Fatalf("first fetch: %v %q %v %v", m, etag, changed, err)
	}
	if _, e2, changed, err := src.Fetch(t.Context(), etag); err != nil || changed || e2 != etag {
		t.Errorf("unchanged: got changed %v etag %q err %v", changed, e2, err)
	}
	// The same bytes rewritten (new mtime): read and hashed, still unchanged.
	writeBuild(t, dir, 1, nil)
	if _, e2, changed, err := src.Fetch(t.Context(), etag); err != nil || changed || e2 != etag {
		t.Errorf("same bytes rewritten: got changed %v etag %q err %v", changed, e2, err)
	}
	writeBuild(t, dir, 2, nil)
	m, e2, changed, err := src.Fetch(t.Context(), etag)
	if err != nil || !changed || e2 == etag || m.BuildID != "build-2" {
		t.Fatalf("new build: got changed %v etag %q err %v", changed, e2, err)
	}
	// Rewritten in place, same size, same modification time (as within
	// one tick of the file system's clock): still seen.
	p := filepath.Join(dir, manifest.FileName)
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(string(data), "build-2", "build-3")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	if m, _, changed, err := src.Fetch(t.Context(), e2); err != nil || !changed || m.BuildID != "build-3" {
		t.Errorf("rewritten within one clock tick: got changed %v, %v; want build-3", changed, err)
	}
}

func TestLiveSetCheck(t *testing.T) {
	dir := t.TempDir()
	writeBuild(t, dir, 1, nil)
	l := newTestLive(t, dir, nil, nil)
	tm, err := LoadTemplates(filepath.Join("testdata", "templates"), l.Current())
	if err != nil {
		t.Fatal(err)
	}
	l.SetCheck(tm.Check)
	writeBuild(t, dir, 2, func(m *manifest.Manifest) { delete(m.Files, "css/site.css") })
	if err := l.Reload(t.Context()); err == nil || l.Current().BuildID() != "build-1" {
		t.Errorf("a build without css/site.css: got %v, serving %s; want a Check error and build-1", err, l.Current().BuildID())
	}
}
