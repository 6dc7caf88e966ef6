package bundler

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/assetctl/assetctl/manifest"
)

// bundleText is the text of an entry point's bundle.
func bundleText(t *testing.T, out string, m *manifest.Manifest, entry string) string {
	t.Helper()
	f, ok := m.Files[entry]
	if !ok {
		t.Fatalf("no manifest entry for %s", entry)
	}
	data, err := os.ReadFile(filepath.Join(out, f.Path))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestPublicDir: public/ files are served under their own names, mutable,
// and a page's /favicon.svg resolves there, left as written.
func TestPublicDir(t *testing.T) {
	site := writeSite(t, map[string]string{
		"index.html":         `<link rel="icon" href="/favicon.svg"><img src="/img/a.png"><script type="module" src="/src/main.ts"></script>`,
		"src/main.ts":        `console.log(1)`,
		"public/favicon.svg": "<svg/>",
		"public/img/a.png":   "png",
		"public/robots.txt":  "User-agent: *",
	})
	out := filepath.Join(t.TempDir(), "dist")
	m := mustBuild(t, Options{SiteDir: site, OutDir: out})
	checkOutput(t, out, m)
	for _, key := range []string{"favicon.svg", "img/a.png", "robots.txt"} {
		f := m.Files[key]
		if f.Path != key || f.Immutable || f.Kind != manifest.KindStatic {
			t.Errorf("%s: got %+v, want a mutable static file named %s", key, f, key)
		}
	}
	page, _ := os.ReadFile(filepath.Join(out, "index.html"))
	if !strings.Contains(string(page), `href="/favicon.svg"`) || !strings.Contains(string(page), `src="/img/a.png"`) {
		t.Errorf("index.html: public references rewritten:\n%s", page)
	}
}

// TestPublicDirClash: a public file and a site file at the same URL is an
// error naming both, and nothing is written.
func TestPublicDirClash(t *testing.T) {
	site := writeSite(t, map[string]string{
		"index.html":        `<p>page</p>`,
		"public/index.html": `<p>shadow</p>`,
	})
	out := filepath.Join(t.TempDir(), "dist")
	be := buildErr(t, Options{SiteDir: site, OutDir: out})
	if got := be.Error(); !strings.Contains(got, "public/index.html") || !strings.Contains(got, "and index.html") {
		t.Errorf("got %q, want both files named", got)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("output written after a clash: %v", err)
	}
}

// TestPublicDirFlag: a --public-dir that does not exist is an error naming
// it; the default public/ may be absent.
func TestPublicDirFlag(t *testing.T) {
	site := writeSite(t, map[string]string{"index.html": "x", "static/x.txt": "x"})
	out := filepath.Join(t.TempDir(), "dist")
	if _, err := New(Options{SiteDir: site, OutDir: out, PublicDir: "nope"}); err == nil || !strings.Contains(err.Error(), "public directory nope") {
		t.Errorf("got %v, want an error naming the public directory", err)
	}
	m := mustBuild(t, Options{SiteDir: site, OutDir: out, PublicDir: "static"})
	if f := m.Files["x.txt"]; f.Path != "x.txt" {
		t.Errorf("x.txt: got %+v, want it at the root", f)
	}
}

// TestImportMetaEnv: Vite's env constants and VITE_* variables from the
// .env files of the mode, in Vite's priority order, with the process
// environment last; other variables never reach the bundle.
func TestImportMetaEnv(t *testing.T) {
	site := writeSite(t, map[string]string{
		"index.html": `<script type="module" src="main.js"></script>`,
		"main.js": `window.out = [import.meta.env.MODE, import.meta.env.DEV, import.meta.env.PROD, import.meta.env.BASE_URL,
			import.meta.env.SSR, import.meta.env.VITE_A, import.meta.env.VITE_B, import.meta.env.VITE_C, import.meta.env.VITE_D,
			import.meta.env.SECRET, process.env.NODE_ENV, JSON.stringify(import.meta.env)].join("|")`,
		".env":                  "VITE_A=env\nVITE_B=env\nVITE_C=env\nSECRET=hunter2\nVITE_D=env\n",
		".env.local":            "VITE_B=local\n",
		".env.production":       "VITE_C=production\n",
		".env.production.local": "VITE_A=production-local\n",
		".env.development":      "VITE_C=development\n",
	})
	for _, tc := range []struct {
		mode string
		want []string
	}{
		{"", []string{`"production"`, `false`, `true`, `"/"`, `"production-local"`, `"local"`, `"production"`, `"process"`}},
		{ModeDevelopment, []string{`"development"`, `"env"`, `"local"`}},
	} {
		t.Run(cmpOr(tc.mode, "production"), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "dist")
			m := mustBuild(t, Options{SiteDir: site, OutDir: out, Mode: tc.mode, NoMinify: true,
				Environ: []string{"VITE_D=process", "OTHER=1"}})
			js := bundleText(t, out, m, "main.js")
			for _, w := range tc.want {
				if !strings.Contains(js, w) {
					t.Errorf("bundle lacks %s:\n%s", w, js)
				}
			}
			if strings.Contains(js, "hunter2") || strings.Contains(js, "SECRET\":") {
				t.Errorf("a variable without the VITE_ prefix reached the bundle:\n%s", js)
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestInvalidEnvFile: a .env line that is not KEY=value is an error at its
// file and line, and nothing is written.
func TestInvalidEnvFile(t *testing.T) {
	site := writeSite(t, map[string]string{
		"index.html": `<script type="module" src="main.js"></script>`,
		"main.js":    `console.log(import.meta.env.VITE_A)`,
		".env":       "VITE_A=1\nVITE B=2\n",
	})
	out := filepath.Join(t.TempDir(), "dist")
	be := buildErr(t, Options{SiteDir: site, OutDir: out})
	if m := be.Messages[0]; m.File != ".env" || m.Line != 2 || !strings.Contains(m.Text, "invalid .env") {
		t.Errorf("got %q, want .env:2: invalid .env file", be.Error())
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("output written after a bad .env: %v", err)
	}
}

// TestAssetImports: `import x from './a.svg'`, `?url`, `?raw`, imports of
// public/ and root-absolute paths, and new URL(..., import.meta.url) give
// the asset's hashed, root-relative URL (the same file a page link gets),
// or its text.
func TestAssetImports(t *testing.T) {
	site := writeSite(t, map[string]string{
		"index.html":         `<script type="module" src="/src/main.ts"></script><img src="src/logo.svg">`,
		"sub/page.html":      `<script type="module" src="../src/main.ts"></script>`,
		"src/main.ts":        "import logo from './logo.svg'\nimport u from './data.json?url'\nimport raw from './note.txt?raw'\nimport fav from '/favicon.svg'\nimport favRaw from '/favicon.svg?raw'\nimport root from '/src/img.png'\nconst img = new URL('./img.png', import.meta.url).href\nconsole.log(logo, u, raw, fav, favRaw, root, img)\n",
		"src/logo.svg":       "<svg>logo</svg>",
		"src/data.json":      `{"a":1}`,
		"src/note.txt":       "hello raw",
		"src/img.png":        "png bytes",
		"public/favicon.svg": "<svg/>",
	})
	out := filepath.Join(t.TempDir(), "dist")
	m := mustBuild(t, Options{SiteDir: site, OutDir: out})
	checkOutput(t, out, m)
	js := bundleText(t, out, m, "src/main.ts")
	for _, key := range []string{"src/logo.svg", "src/data.json", "src/img.png"} {
		f, ok := m.Files[key]
		if !ok || !f.Immutable {
			t.Errorf("%s: got %+v, want a hashed asset", key, f)
			continue
		}
		if !strings.Contains(js, `"/`+f.Path+`"`) {
			t.Errorf("bundle lacks the URL /%s:\n%s", f.Path, js)
		}
	}
	if !strings.Contains(js, "hello raw") || !strings.Contains(js, `"/favicon.svg"`) || !strings.Contains(js, `"<svg/>"`) {
		t.Errorf("bundle lacks the ?raw text or the public URL:\n%s", js)
	}
	if strings.Contains(js, "assetctl-asset:") {
		t.Errorf("a marker survived:\n%s", js)
	}
	if _, ok := m.Files["src/note.txt"]; ok {
		t.Errorf("src/note.txt: published, want it only inlined by ?raw")
	}
	if n := len(regexp.MustCompile(`logo\.[0-9a-f]{8}\.svg`).FindAllString(strings.Join(keys(tree(t, out)), " "), -1)); n != 1 {
		t.Errorf("got %d copies of logo.svg, want 1 (the page's link and the import share it)", n)
	}
}

func keys[V any](m map[string]V) []string { return sortedKeys(m) }

// TestTsconfigReferences: a solution tsconfig.json (files: [], references)
// as in Vite's TypeScript starters: the JSX settings of the referenced
// tsconfig that includes the sources apply (here Preact's runtime).
func TestTsconfigReferences(t *testing.T) {
	site := writeSite(t, map[string]string{
		"index.html":         `<script type="module" src="/src/main.tsx"></script>`,
		"src/main.tsx":       `export const x = <p>hi</p>`,
		"tsconfig.json":      `{ "files": [], "references": [{ "path": "./tsconfig.node.json" }, { "path": "./tsconfig.app.json" }] }`,
		"tsconfig.node.json": `{ "compilerOptions": { "jsx": "preserve" }, "include": ["vite.config.ts"] }`,
		"tsconfig.app.json": `{
			"compilerOptions": {
				/* Bundler mode */
				"jsx": "react-jsx", // the automatic runtime
				"jsxImportSource": "preact",
			},
			"include": ["src"],
		}`,
		"node_modules/preact/package.json":   `{"name":"preact","exports":{"./jsx-runtime":"./jsx-runtime.js"}}`,
		"node_modules/preact/jsx-runtime.js": `export function jsx(t, p) { return "preact-jsx:" + t }`,
	})
	out := filepath.Join(t.TempDir(), "dist")
	m := mustBuild(t, Options{SiteDir: site, OutDir: out, NoMinify: true})
	if js := bundleText(t, out, m, "src/main.tsx"); !strings.Contains(js, "preact-jsx:") {
		t.Errorf("bundle does not use preact's jsx runtime:\n%s", js)
	}
}

// TestJSXFromPackage: without a tsconfig, a project depending on react
// gets React's automatic runtime, as @vitejs/plugin-react gives it.
func TestJSXFromPackage(t *testing.T) {
	site := writeSite(t, map[string]string{
		"index.html":                        `<script type="module" src="/src/main.jsx"></script>`,
		"src/main.jsx":                      `export const x = <p>hi</p>`,
		"package.json":                      `{"dependencies":{"react":"^19"}}`,
		"node_modules/react/package.json":   `{"name":"react","exports":{"./jsx-runtime":"./jsx-runtime.js"}}`,
		"node_modules/react/jsx-runtime.js": `export function jsx(t, p) { return "react-jsx:" + t }`,
	})
	out := filepath.Join(t.TempDir(), "dist")
	m := mustBuild(t, Options{SiteDir: site, OutDir: out, NoMinify: true})
	if js := bundleText(t, out, m, "src/main.jsx"); !strings.Contains(js, "react-jsx:") {
		t.Errorf("bundle does not use react's jsx runtime:\n%s", js)
	}
}

// TestDecorators: TypeScript experimental decorators (Lit's @customElement)
// compile with the tsconfig's setting.
func TestDecorators(t *testing.T) {
	site := writeSite(t, map[string]string{
		"index.html":    `<script type="module" src="/src/el.ts"></script>`,
		"src/el.ts":     "function tag(n: string) { return (c: any) => { (window as any).tagged = n; return c } }\n@tag('my-el') export class El {}\n",
		"tsconfig.json": `{ "compilerOptions": { "experimentalDecorators": true, "useDefineForClassFields": false }, "include": ["src"] }`,
	})
	out := filepath.Join(t.TempDir(), "dist")
	m := mustBuild(t, Options{SiteDir: site, OutDir: out, NoMinify: true})
	if js := bundleText(t, out, m, "src/el.ts"); !strings.Contains(js, "__decorateClass") {
		t.Errorf("bundle lacks the legacy decorator helper:\n%s", js)
	}
}

// TestPublishOnlyUsed: repository files and unreferenced assets stay out
// and are listed by Omitted; --include brings one back; what a stylesheet
// or web manifest references is kept transitively.
func TestPublishOnlyUsed(t *testing.T) {
	site := writeSite(t, map[string]string{
		"index.html":        `<link rel="stylesheet" href="css/a.css"><link rel="manifest" href="app.webmanifest">`,
		"css/a.css":         `@import "b.css"; body { background: url(../img/bg.png) }`,
		"css/b.css":         `p { background: url(../img/p.png) }`,
		"css/unused.css":    `p { background: url(../img/unused-bg.png) }`,
		"app.webmanifest":   `{"icons":[{"src":"img/icon.png"}]}`,
		"img/bg.png":        "bg",
		"img/p.png":         "p",
		"img/icon.png":      "icon",
		"img/unused-bg.png": "u",
		"data/keep.json":    "{}",
		"README.md":         "# repo",
		"LICENSE":           "MIT",
		"tsconfig.app.json": "{}",
		"vite.config.ts":    "export default {}",
		"eslint.config.js":  "export default []",
	})
	out := filepath.Join(t.TempDir(), "dist")
	b, err := New(Options{SiteDir: site, OutDir: out, Include: []string{"data/*.json"}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	m, err := b.Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checkOutput(t, out, m)
	for _, k := range []string{"index.html", "css/a.css", "css/b.css", "app.webmanifest", "img/bg.png", "img/p.png", "img/icon.png", "data/keep.json"} {
		if _, ok := m.Files[k]; !ok {
			t.Errorf("%s: left out, want it published", k)
		}
	}
	want := []string{"LICENSE", "README.md", "css/unused.css", "eslint.config.js", "img/unused-bg.png", "tsconfig.app.json", "vite.config.ts"}
	if got := b.Omitted(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Omitted: got %v, want %v", got, want)
	}
	for _, k := range want {
		if f, ok := m.Files[k]; ok {
			t.Errorf("%s: published as %s, want it left out", k, f.Path)
		}
	}
}

// TestViteDistIgnored: in a Vite project (vite.config.* at the root), a
// dist/ left by an earlier `vite build` is not read as site sources.
func TestViteDistIgnored(t *testing.T) {
	site := writeSite(t, map[string]string{
		"index.html":                `<script type="module" src="/src/main.ts"></script>`,
		"src/main.ts":               `console.log(1)`,
		"vite.config.ts":            `export default {}`,
		"dist/index.html":           `<script type="module" src="/assets/index-AAAAAAAA.js"></script>`,
		"dist/assets/stale-BBBB.js": `x`,
	})
	out := filepath.Join(t.TempDir(), "out")
	m := mustBuild(t, Options{SiteDir: site, OutDir: out})
	for k := range m.Files {
		if strings.HasPrefix(k, "dist/") {
			t.Errorf("%s: published from vite's old output", k)
		}
	}
}
