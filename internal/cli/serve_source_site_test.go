package cli

import (
	"crypto/sha256"
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/assetctl/assetctl/bundler"
	"github.com/assetctl/assetctl/origin"
)

// TestOriginOnExampleSite builds examples/site with the real bundler and
// serves it through origin's DirSource: every URL the entry tags name is
// a file of the build whose bytes match the integrity they carry, the
// script's chunk is modulepreloaded, its dynamic import only prefetched.
func TestOriginOnExampleSite(t *testing.T) {
	out := filepath.Join(t.TempDir(), "dist")
	b, err := bundler.New(bundler.Options{SiteDir: "../../examples/site", OutDir: out})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Build(t.Context()); err != nil {
		t.Fatal(err)
	}
	b.Close()
	const cdn = "https://cdn.example.com/site/"
	live, err := origin.NewLive(t.Context(), origin.DirSource(out), origin.LiveOptions{CDNURL: cdn})
	if err != nil {
		t.Fatal(err)
	}
	a := live.Current()
	m := a.Manifest()
	app := m.Files["js/app.ts"]
	if len(app.Imports) == 0 || len(app.DynamicImports) == 0 || len(app.CSS) == 0 {
		t.Fatalf("examples/site's js/app.ts no longer has imports, dynamic imports and CSS: %+v", app)
	}
	h, err := a.EntryTags("js/app.ts", origin.TagOptions{Nonce: "bm9uY2U=", PrefetchDynamic: true})
	if err != nil {
		t.Fatal(err)
	}
	tag := regexp.MustCompile(`<(?:link|script) [^>]*(?:href|src)="` + regexp.QuoteMeta(cdn) + `([^"]+)"(?: integrity="([^"]+)")?`)
	found := tag.FindAllStringSubmatch(string(h), -1)
	if len(found) != 1+len(app.Imports)+len(app.CSS)+len(app.DynamicImports) {
		t.Errorf("got %d tags, want one per file:\n%s", len(found), h)
	}
	for _, f := range found {
		data, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(f[1])))
		if err != nil {
			t.Errorf("tag names %s, which the build did not write: %v", f[1], err)
			continue
		}
		sum := sha256.Sum256(data)
		if want := "sha256-" + base64.StdEncoding.EncodeToString(sum[:]); f[2] != want {
			t.Errorf("%s: integrity %q, want %q", f[1], f[2], want)
		}
	}
	for _, want := range []string{`<link rel="modulepreload" href="` + cdn + app.Imports[0] + `"`, `<link rel="prefetch" href="` + cdn + app.DynamicImports[0] + `"`} {
		if !strings.Contains(string(h), want) {
			t.Errorf("tags lack %s:\n%s", want, h)
		}
	}
}
