package bundler

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/assetctl/assetctl/manifest"
)

const exampleSite = "../examples/site"

// copyTree copies a directory (files only) into a new temporary directory.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// writeSite creates a site from a map of path to content.
func writeSite(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func build(t *testing.T, opts Options) (*manifest.Manifest, error) {
	t.Helper()
	b, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer b.Close()
	return b.Build(context.Background())
}

func mustBuild(t *testing.T, opts Options) *manifest.Manifest {
	t.Helper()
	m, err := build(t, opts)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return m
}

// tree reads every file under dir into a map keyed by slash path.
func tree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		data, err := os.ReadFile(p)
		out[filepath.ToSlash(rel)] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkOutput verifies the manifest against the bytes on disk (point 8):
// every file is listed exactly once, hashes, sizes and integrity match,
// and immutable names carry the first 8 hex digits of their hash.
func checkOutput(t *testing.T, out string, m *manifest.Manifest) {
	t.Helper()
	checkOutputNames(t, out, m, true)
}

// checkOutputNames is checkOutput; ownNames says whether immutable names
// follow assetctl's name.HASH8.ext (another tool's, imported, do not).
func checkOutputNames(t *testing.T, out string, m *manifest.Manifest, ownNames bool) {
	t.Helper()
	loaded, err := manifest.Load(out)
	if err != nil {
		t.Fatalf("manifest.Load: %v", err)
	}
	if loaded.BuildID != m.BuildID || loaded.BuildID != m.ComputeBuildID() {
		t.Errorf("buildID: got %s on disk, %s returned, want %s", loaded.BuildID, m.BuildID, m.ComputeBuildID())
	}
	files := tree(t, out)
	delete(files, manifest.FileName)
	listed := map[string]bool{}
	for _, o := range m.Outputs() {
		listed[o.Path] = true
		data, ok := files[o.Path]
		if !ok {
			t.Errorf("manifest lists %s, not on disk", o.Path)
			continue
		}
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != o.Hash {
			t.Errorf("%s: got hash %s, want manifest's %s", o.Path, got, o.Hash)
		}
		if int64(len(data)) != o.Size {
			t.Errorf("%s: got size %d, want manifest's %d", o.Path, len(data), o.Size)
		}
		if ownNames && o.Immutable && !strings.Contains(o.Path, "."+o.Hash[:8]+".") && !strings.HasSuffix(o.Path, "."+o.Hash[:8]) {
			t.Errorf("%s: immutable but name lacks hash %s", o.Path, o.Hash[:8])
		}
	}
	for p := range files {
		if !listed[p] {
			t.Errorf("%s is on disk but not in the manifest", p)
		}
	}
	for k, f := range m.Files {
		sum, _ := hex.DecodeString(f.Hash)
		var d [32]byte
		copy(d[:], sum)
		if !strings.HasPrefix(f.Integrity, "sha256-") {
			t.Errorf("%s: integrity %q, want sha256-…", k, f.Integrity)
		}
	}
}

func TestBuildExampleSite(t *testing.T) {
	out := filepath.Join(t.TempDir(), "dist")
	m := mustBuild(t, Options{SiteDir: exampleSite, OutDir: out})
	checkOutput(t, out, m)

	get := func(key string) manifest.File {
		t.Helper()
		f, ok := m.Lookup(key)
		if !ok {
			t.Fatalf("manifest has no %q", key)
		}
		return f
	}
	index := string(tree(t, out)["index.html"])
	site, app := get("css/site.css"), get("js/app.ts")
	for _, want := range []string{
		`href="` + site.Path + `" integrity="` + site.Integrity + `" crossorigin="anonymous"`,
		`src="` + app.Path + `" integrity="` + app.Integrity + `" crossorigin="anonymous"`,
		`<link rel="stylesheet" href="` + app.CSS[0] + `"`,
		`href="/` + get("favicon.ico").Path + `"`,
		`content="/` + get("img/og-card.jpg").Path + `"`,
		`srcset="` + get("img/hero.jpg").Path + ` 320w, ` + get("img/hero@2x.jpg").Path + `?v=2 640w"`,
		`href="` + get("img/icons.svg").Path + `#star"`,
		`href="about.html"`, `href="blog/"`, `href="https://github.com/assetctl/assetctl"`, `href="#main"`,
	} {
		if !strings.Contains(index, want) {
			t.Errorf("index.html: missing %s", want)
		}
	}
	if app.Kind != manifest.KindEntry || len(app.Imports) == 0 || len(app.DynamicImports) == 0 || len(app.CSS) != 1 || app.SourceMap == "" {
		t.Errorf("js/app.ts entry: got %+v, want imports, dynamic imports, one stylesheet and a source map", app)
	}
	if f := get("favicon.ico"); f.Alias != "favicon.ico" || !f.Immutable {
		t.Errorf("favicon.ico: got %+v, want a hashed path with alias favicon.ico", f)
	}
	for _, k := range []string{"robots.txt", "sitemap.xml", ".well-known/security.txt"} {
		if f := get(k); f.Path != k || f.Immutable || f.Kind != manifest.KindStatic {
			t.Errorf("%s: got %+v, want its own mutable name", k, f)
		}
	}
	if _, ok := m.Lookup("js/nav.ts"); ok {
		t.Error("js/nav.ts: a bundled module got an output of its own")
	}
	if _, ok := m.Lookup("tsconfig.json"); ok {
		t.Error("tsconfig.json: tool config was copied to the output")
	}
}

// TestDeterministic: two builds of the same input, from different
// directories, give byte-identical output trees (point 9).
func TestDeterministic(t *testing.T) {
	a, b := copyTree(t, exampleSite), copyTree(t, exampleSite)
	outA, outB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	ma := mustBuild(t, Options{SiteDir: a, OutDir: outA})
	mb := mustBuild(t, Options{SiteDir: b, OutDir: outB, Workers: 1})
	if ma.BuildID != mb.BuildID {
		t.Errorf("buildID: got %s and %s, want equal", ma.BuildID, mb.BuildID)
	}
	ta, tb := tree(t, outA), tree(t, outB)
	if len(ta) != len(tb) {
		t.Fatalf("got %d and %d files, want equal", len(ta), len(tb))
	}
	for p, data := range ta {
		if !bytes.Equal(data, tb[p]) {
			t.Errorf("%s differs between builds", p)
		}
	}
}

// TestHashPropagation: changing an image renames the stylesheet that uses
// it and the one that imports that, and leaves the rest alone (point 4).
func TestHashPropagation(t *testing.T) {
	site := copyTree(t, exampleSite)
	out := filepath.Join(t.TempDir(), "dist")
	b, err := New(Options{SiteDir: site, OutDir: out})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	before, err := b.Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	logo := filepath.Join(site, "img", "logo.png")
	data, _ := os.ReadFile(logo)
	if err := os.WriteFile(logo, append(data, 0), 0o644); err != nil {
		t.Fatal(err)
	}
	after, err := b.Build(context.Background(), logo)
	if err != nil {
		t.Fatal(err)
	}
	checkOutput(t, out, after)
	for _, tc := range []struct {
		key     string
		changes bool
	}{
		{"img/logo.png", true},
		{"css/base.css", true}, // url(../img/logo.png)
		{"css/site.css", true}, // @import "base.css"
		{"index.html", true},   // links css/site.css
		{"css/typography.css", false},
		{"img/hero.jpg", false},
		{"js/app.ts", false},
	} {
		t.Run(tc.key, func(t *testing.T) {
			changed := before.Files[tc.key].Hash != after.Files[tc.key].Hash
			if changed != tc.changes {
				t.Errorf("hash changed: got %v, want %v", changed, tc.changes)
			}
		})
	}
	if before.BuildID == after.BuildID {
		t.Error("buildID did not change")
	}
}

func TestStaleFilesRemoved(t *testing.T) {
	site := writeSite(t, map[string]string{"index.html": `<img src="a.png">`, "a.png": "one"})
	out := filepath.Join(t.TempDir(), "dist")
	m1 := mustBuild(t, Options{SiteDir: site, OutDir: out})
	os.WriteFile(filepath.Join(site, "a.png"), []byte("two"), 0o644)
	m2 := mustBuild(t, Options{SiteDir: site, OutDir: out})
	old := m1.Files["a.png"].Path
	if _, err := os.Stat(filepath.Join(out, old)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale %s: got %v, want it gone", old, err)
	}
	checkOutput(t, out, m2)
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".dist.tmp-*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary directories left behind: %v", leftovers)
	}
}

func buildErr(t *testing.T, opts Options) *BuildError {
	t.Helper()
	_, err := build(t, opts)
	var be *BuildError
	if !errors.As(err, &be) {
		t.Fatalf("got %v, want a *BuildError", err)
	}
	return be
}

func TestMissingAsset(t *testing.T) {
	site := writeSite(t, map[string]string{
		"page.html": "<!doctype html>\n<title>x</title>\n\n<img\n  src=\"img/x.png\">\n<a href=\"/no/route\">ok</a>\n",
	})
	out := filepath.Join(t.TempDir(), "dist")
	be := buildErr(t, Options{SiteDir: site, OutDir: out})
	if got, want := be.Error(), `page.html:5: missing asset "img/x.png"`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := be.Messages[0]; got.File != "page.html" || got.Line != 5 {
		t.Errorf("got %+v, want File page.html Line 5", got)
	}
	if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OUT_DIR after a failed build: got %v, want it absent", err)
	}
	// Downgraded to a warning, the build succeeds and keeps the reference.
	m := mustBuild(t, Options{SiteDir: site, OutDir: out, MissingAssets: MissingWarn})
	if page := tree(t, out)["page.html"]; !bytes.Contains(page, []byte(`src="img/x.png"`)) {
		t.Errorf("page.html: got %s, want the reference left as written", page)
	}
	checkOutput(t, out, m)
}

func TestEscapingReferenceRefused(t *testing.T) {
	for _, tc := range []struct{ name, page, want string }{
		{"relative", `<img src="../../etc/passwd">`, `page.html:1: reference "../../etc/passwd" escapes the site root`},
		{"root-relative", `<link rel="stylesheet" href="/../secret.css">`, `page.html:1: reference "/../secret.css" escapes the site root`},
		{"css", `<style>a{background:url(../x.png)}</style>`, `page.html:1: reference "../x.png" escapes the site root`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			site := writeSite(t, map[string]string{"page.html": tc.page})
			be := buildErr(t, Options{SiteDir: site, OutDir: filepath.Join(t.TempDir(), "d")})
			if be.Error() != tc.want {
				t.Errorf("got %q, want %q", be.Error(), tc.want)
			}
		})
	}
}

func TestEscapingSymlinkRefused(t *testing.T) {
	outside := writeSite(t, map[string]string{"secret.txt": "s"})
	site := writeSite(t, map[string]string{"index.html": "<p>hi</p>", "inside.txt": "i"})
	if err := os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(site, "leak.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("inside.txt", filepath.Join(site, "alias.txt")); err != nil {
		t.Fatal(err)
	}
	be := buildErr(t, Options{SiteDir: site, OutDir: filepath.Join(t.TempDir(), "d")})
	if len(be.Messages) != 1 || be.Messages[0].File != "leak.txt" || !strings.Contains(be.Messages[0].Text, "symlink escapes the site root") {
		t.Errorf("got %q, want one message about leak.txt escaping", be.Error())
	}
	os.Remove(filepath.Join(site, "leak.txt"))
	out := filepath.Join(t.TempDir(), "d")
	m := mustBuild(t, Options{SiteDir: site, OutDir: out})
	if m.Files["alias.txt"].Hash != m.Files["inside.txt"].Hash {
		t.Errorf("symlink inside the site: got %+v, want the target's bytes", m.Files["alias.txt"])
	}
}

func TestCycleReported(t *testing.T) {
	site := writeSite(t, map[string]string{
		"index.html": `<link rel="stylesheet" href="a.css">`,
		"a.css":      `@import "b.css";`,
		"b.css":      `@import url(a.css);`,
	})
	be := buildErr(t, Options{SiteDir: site, OutDir: filepath.Join(t.TempDir(), "d")})
	if !strings.Contains(be.Error(), "reference cycle: a.css -> b.css -> a.css") {
		t.Errorf("got %q, want the cycle a.css -> b.css -> a.css", be.Error())
	}
}

func TestEsbuildErrorLocated(t *testing.T) {
	site := writeSite(t, map[string]string{
		"index.html": `<script type="module" src="main.ts"></script>`,
		"main.ts":    "const a = 1;\nlet b = ;\n",
	})
	out := filepath.Join(t.TempDir(), "d")
	be := buildErr(t, Options{SiteDir: site, OutDir: out})
	if m := be.Messages[0]; m.File != "main.ts" || m.Line != 2 || m.Column != 9 {
		t.Errorf("got %+v, want main.ts:2:9", m)
	}
	if !regexp.MustCompile(`^main\.ts:2:9: `).MatchString(be.Error()) {
		t.Errorf("got %q, want it to start with main.ts:2:9:", be.Error())
	}
}

// TestFailureKeepsPreviousOutput: a failed build leaves the previous
// output exactly as it was and no temporary directory behind.
func TestFailureKeepsPreviousOutput(t *testing.T) {
	site := writeSite(t, map[string]string{"index.html": `<img src="a.png">`, "a.png": "a"})
	parent := t.TempDir()
	out := filepath.Join(parent, "dist")
	mustBuild(t, Options{SiteDir: site, OutDir: out})
	before := tree(t, out)
	os.WriteFile(filepath.Join(site, "index.html"), []byte(`<img src="b.png">`), 0o644)
	buildErr(t, Options{SiteDir: site, OutDir: out})
	after := tree(t, out)
	if len(after) != len(before) {
		t.Fatalf("got %d files after a failed build, want the previous %d", len(after), len(before))
	}
	for p, d := range before {
		if !bytes.Equal(after[p], d) {
			t.Errorf("%s changed after a failed build", p)
		}
	}
	ents, _ := os.ReadDir(parent)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "dist" {
		t.Errorf("output parent holds %v, want only dist", names)
	}
}

func TestRefusesForeignOutDir(t *testing.T) {
	site := writeSite(t, map[string]string{"index.html": "<p>x</p>"})
	out := writeSite(t, map[string]string{"precious.txt": "keep me"})
	_, err := build(t, Options{SiteDir: site, OutDir: out})
	if !errors.Is(err, ErrNotBuildOutput) {
		t.Fatalf("got %v, want ErrNotBuildOutput", err)
	}
	if data, _ := os.ReadFile(filepath.Join(out, "precious.txt")); string(data) != "keep me" {
		t.Error("precious.txt was touched")
	}
	if _, err := New(Options{SiteDir: site, OutDir: filepath.Dir(site)}); err == nil {
		t.Error("OUT_DIR containing the site: got nil error, want one")
	}
}

// TestBaseURL: pages reference assets on the CDN; links between pages and
// references inside CSS stay relative (point 6).
func TestBaseURL(t *testing.T) {
	out := filepath.Join(t.TempDir(), "dist")
	m := mustBuild(t, Options{SiteDir: exampleSite, OutDir: out, BaseURL: "https://cdn.example.com/assets"})
	files := tree(t, out)
	index := string(files["index.html"])
	css := m.Files["css/site.css"].Path
	for _, want := range []string{
		`href="https://cdn.example.com/assets/` + css + `"`,
		`src="https://cdn.example.com/assets/` + m.Files["js/app.ts"].Path + `"`,
		`srcset="https://cdn.example.com/assets/` + m.Files["img/hero.jpg"].Path + ` 320w`,
		`href="about.html"`,
	} {
		if !strings.Contains(index, want) {
			t.Errorf("index.html: missing %s", want)
		}
	}
	if !bytes.Contains(files[css], []byte(`@import "`+strings.TrimPrefix(m.Files["css/base.css"].Path, "css/")+`"`)) {
		t.Errorf("%s: want a relative @import", css)
	}
	if m.BaseURL != "https://cdn.example.com/assets" {
		t.Errorf("manifest baseURL: got %q", m.BaseURL)
	}
}

// TestSRIOff: no integrity attributes when turned off (point 7).
func TestSRIOff(t *testing.T) {
	out := filepath.Join(t.TempDir(), "dist")
	mustBuild(t, Options{SiteDir: exampleSite, OutDir: out, NoSRI: true})
	if index := tree(t, out)["index.html"]; bytes.Contains(index, []byte("integrity=")) {
		t.Errorf("index.html has integrity attributes with NoSRI")
	}
}

// TestIncrementalRebuild: a Builder reused after a source edit rebuilds
// only what changed and keeps its esbuild context.
func TestIncrementalRebuild(t *testing.T) {
	site := copyTree(t, exampleSite)
	out := filepath.Join(t.TempDir(), "dist")
	b, err := New(Options{SiteDir: site, OutDir: out})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	m1, err := b.Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	es := b.es
	nav := filepath.Join(site, "js", "nav.ts")
	src, _ := os.ReadFile(nav)
	os.WriteFile(nav, append(src, []byte("\nexport const version = 2;\n")...), 0o644)
	m2, err := b.Build(context.Background(), "js/nav.ts")
	if err != nil {
		t.Fatal(err)
	}
	if b.es != es {
		t.Error("esbuild context was recreated for an edit that kept the entry points")
	}
	if m1.Files["img/logo.png"].Path != m2.Files["img/logo.png"].Path {
		t.Error("an unrelated image changed name")
	}
	checkOutput(t, out, m2)
	// Broken TS: typed error, previous output kept.
	os.WriteFile(nav, []byte("export function (\n"), 0o644)
	_, err = b.Build(context.Background())
	var be *BuildError
	if !errors.As(err, &be) || be.Messages[0].File != "js/nav.ts" {
		t.Fatalf("got %v, want a BuildError in js/nav.ts", err)
	}
	if got, _ := manifest.Load(out); got.BuildID != m2.BuildID {
		t.Error("failed rebuild changed the output")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Build(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Build after Close: got %v, want ErrClosed", err)
	}
}

// TestRebuildLinksUnchangedFiles: a new Builder (a new process) building
// into an existing output hard-links unchanged assets instead of copying.
func TestRebuildLinksUnchangedFiles(t *testing.T) {
	site := writeSite(t, map[string]string{"index.html": `<img src="a.png"><img src="b.png">`, "a.png": "aaa", "b.png": "bbb"})
	out := filepath.Join(t.TempDir(), "dist")
	m1 := mustBuild(t, Options{SiteDir: site, OutDir: out})
	ino := func(p string) uint64 {
		t.Helper()
		fi, err := os.Stat(filepath.Join(out, p))
		if err != nil {
			t.Fatal(err)
		}
		return statOf(fi).ino
	}
	before := ino(m1.Files["a.png"].Path)
	os.WriteFile(filepath.Join(site, "b.png"), []byte("BBB"), 0o644)
	m2 := mustBuild(t, Options{SiteDir: site, OutDir: out})
	if got := ino(m2.Files["a.png"].Path); got != before {
		t.Errorf("a.png: got inode %d, want %d (linked from the previous build)", got, before)
	}
	if m1.Files["b.png"].Path == m2.Files["b.png"].Path {
		t.Errorf("b.png: changed content kept name %s", m2.Files["b.png"].Path)
	}
	checkOutput(t, out, m2)
}

// TestRootManifestJSON: a site's own manifest.json (a web app manifest)
// gets a hashed name and does not collide with the build's manifest.
func TestRootManifestJSON(t *testing.T) {
	site := writeSite(t, map[string]string{
		"index.html":    `<link rel="manifest" href="/manifest.json">`,
		"manifest.json": `{"icons":[{"src":"icon.png"}]}`,
		"icon.png":      "png",
	})
	out := filepath.Join(t.TempDir(), "dist")
	m := mustBuild(t, Options{SiteDir: site, OutDir: out})
	checkOutput(t, out, m)
	f := m.Files["manifest.json"]
	if !strings.HasPrefix(f.Path, "manifest.") || f.Path == "manifest.json" {
		t.Fatalf("manifest.json: got path %q, want a hashed name", f.Path)
	}
	if data := tree(t, out)[f.Path]; !bytes.Contains(data, []byte(m.Files["icon.png"].Path)) {
		t.Errorf("%s: got %s, want the icon rewritten", f.Path, data)
	}
}

// checkLinks resolves every local reference in the output's pages and
// stylesheets against the output tree: the build is consistent when each
// one exists (or is a page route).
func checkLinks(t *testing.T, out string) {
	t.Helper()
	files := tree(t, out)
	for p, data := range files {
		var mode nodeMode
		switch filepath.Ext(p) {
		case ".html":
			mode = modePage
		case ".css":
			mode = modeCSS
		default:
			continue
		}
		rec := &recorder{}
		var sink bytes.Buffer
		if err := rewriteAs(mode, &sink, data, rec); err != nil {
			t.Fatal(err)
		}
		for _, r := range rec.refs {
			parts, ok := localURL(r.URL)
			if !ok || r.Kind == refLink || isDirURL(parts.path) {
				continue
			}
			rel, inside := resolveRel(p, parts.path)
			if _, exists := files[rel]; !inside || !exists {
				t.Errorf("%s:%d: %q resolves to %q, not in the output", p, r.Line, r.URL, rel)
			}
		}
	}
}

func TestOutputLinksResolve(t *testing.T) {
	for _, site := range []string{exampleSite, "testdata/golden/site"} {
		t.Run(site, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "dist")
			mustBuild(t, Options{SiteDir: site, OutDir: out})
			checkLinks(t, out)
			if site == exampleSite {
				for _, page := range []string{"index.html", "blog/index.html", "blog/post-hello.html"} {
					if !bytes.Contains(tree(t, out)[page], []byte(`rel="modulepreload"`)) {
						t.Errorf("%s: no modulepreload link for the entry's chunk", page)
					}
				}
			}
		})
	}
}

// TestKeepNames: configured patterns keep their names like the built-in
// well-known paths; referenced ones also get a hashed copy (point 5). An
// unreferenced file that keeps no name is left out (issue 10).
func TestKeepNames(t *testing.T) {
	site := writeSite(t, map[string]string{
		"index.html":                  `<a href="downloads/guide.pdf">guide</a><link rel="apple-touch-icon" href="apple-touch-icon-180.png">`,
		"downloads/guide.pdf":         "pdf",
		"downloads/other.pdf":         "pdf2",
		"apple-touch-icon-180.png":    "icon",
		".well-known/assetlinks.json": "[]",
		"sitemap-blog.xml":            "<urlset/>",
		"img/unreferenced.png":        "x",
	})
	out := filepath.Join(t.TempDir(), "dist")
	m := mustBuild(t, Options{SiteDir: site, OutDir: out, KeepNames: []string{"downloads/*.pdf"}})
	checkOutput(t, out, m)
	for _, tc := range []struct {
		key, path, alias string
	}{
		{"downloads/guide.pdf", "downloads/guide.pdf", ""}, // a link to a kept name stays a link to it
		{"downloads/other.pdf", "downloads/other.pdf", ""},
		{".well-known/assetlinks.json", ".well-known/assetlinks.json", ""},
		{"sitemap-blog.xml", "sitemap-blog.xml", ""},
		{"apple-touch-icon-180.png", "apple-touch-icon-180." + m.Files["apple-touch-icon-180.png"].Hash[:8] + ".png", "apple-touch-icon-180.png"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			f := m.Files[tc.key]
			if f.Path != tc.path || f.Alias != tc.alias {
				t.Errorf("got path %q alias %q, want %q and %q", f.Path, f.Alias, tc.path, tc.alias)
			}
		})
	}
	if f, ok := m.Files["img/unreferenced.png"]; ok {
		t.Errorf("img/unreferenced.png: got published as %s, want left out", f.Path)
	}
}

// TestBundleCycleResolved: an entry and a chunk that dynamically import
// each other form a cycle; it is named deterministically as a group
// instead of failing the build (point 4), and editing either renames both.
func TestBundleCycleResolved(t *testing.T) {
	site := writeSite(t, map[string]string{
		"index.html": `<script type="module" src="a.ts"></script>`,
		"a.ts":       "export const a = 1;\ndocument.onclick = async () => console.log((await import(\"./b\")).b);\n",
		"b.ts":       "export const b = 2;\nexport async function back() { return (await import(\"./a\")).a; }\n",
	})
	out1, out2 := filepath.Join(t.TempDir(), "1"), filepath.Join(t.TempDir(), "2")
	m1 := mustBuild(t, Options{SiteDir: site, OutDir: out1})
	m2 := mustBuild(t, Options{SiteDir: site, OutDir: out2, Workers: 1})
	if m1.BuildID != m2.BuildID {
		t.Errorf("buildID: got %s and %s, want equal", m1.BuildID, m2.BuildID)
	}
	entry := m1.Files["a.ts"]
	if len(entry.DynamicImports) != 1 {
		t.Fatalf("a.ts: got %+v, want one dynamic import", entry)
	}
	chunk := entry.DynamicImports[0]
	files := tree(t, out1)
	if !bytes.Contains(files[entry.Path], []byte(filepath.Base(chunk))) {
		t.Errorf("%s does not import %s", entry.Path, chunk)
	}
	if !bytes.Contains(files[chunk], []byte("../"+entry.Path)) {
		t.Errorf("%s does not import ../%s:\n%s", chunk, entry.Path, files[chunk])
	}
	for _, o := range m1.Outputs() {
		sum := sha256.Sum256(files[o.Path])
		if hex.EncodeToString(sum[:]) != o.Hash {
			t.Errorf("%s: manifest hash is not the hash of its bytes", o.Path)
		}
	}
	os.WriteFile(filepath.Join(site, "b.ts"), []byte("export const b = 3;\nexport async function back() { return (await import(\"./a\")).a; }\n"), 0o644)
	m3 := mustBuild(t, Options{SiteDir: site, OutDir: out1})
	if m3.Files["a.ts"].Path == entry.Path || m3.Files["a.ts"].DynamicImports[0] == chunk {
		t.Errorf("after editing b.ts: got %s and %s, want both renamed", m3.Files["a.ts"].Path, m3.Files["a.ts"].DynamicImports[0])
	}
}

// TestOutDirInsideSite: the common `assetctl build . -o dist` never feeds
// the previous output back into the build.
func TestOutDirInsideSite(t *testing.T) {
	site := writeSite(t, map[string]string{"index.html": `<img src="a.png">`, "a.png": "a"})
	out := filepath.Join(site, "dist")
	m1 := mustBuild(t, Options{SiteDir: site, OutDir: out})
	m2 := mustBuild(t, Options{SiteDir: site, OutDir: out})
	if len(m2.Files) != len(m1.Files) || m1.BuildID != m2.BuildID {
		t.Errorf("second build: got %d files (build %s), want %d (build %s)", len(m2.Files), m2.BuildID, len(m1.Files), m1.BuildID)
	}
	checkOutput(t, out, m2)
}

// TestCancelledBuildLeavesNothing: a cancelled build returns the context's
// error and writes nothing.
func TestCancelledBuildLeavesNothing(t *testing.T) {
	out := filepath.Join(t.TempDir(), "dist")
	b, err := New(Options{SiteDir: exampleSite, OutDir: out})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Build(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 0 {
		t.Errorf("cancelled build left %d entries beside OUT_DIR, want none", len(ents))
	}
}

// TestSymlinkedSiteDir: a site directory given through a symlink is walked
// as the directory it points to, and an OUT_DIR inside it is still skipped.
func TestSymlinkedSiteDir(t *testing.T) {
	real := writeSite(t, map[string]string{"index.html": `<img src="a.png">`, "a.png": "a"})
	link := filepath.Join(t.TempDir(), "site")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(link, "dist")
	mustBuild(t, Options{SiteDir: link, OutDir: out})
	m := mustBuild(t, Options{SiteDir: link, OutDir: out})
	if len(m.Files) != 2 {
		t.Errorf("got %d files, want 2 (index.html and a.png)", len(m.Files))
	}
	checkOutput(t, out, m)
}
