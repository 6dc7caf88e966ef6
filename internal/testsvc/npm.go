package testsvc

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// CreateViteVersion pins the create-vite release the starter fixtures come
// from, so a new template upstream does not change what the tests build.
const CreateViteVersion = "9.3.0"

// ViteVersion is the vite release tests build prebuilt fixtures with.
const ViteVersion = "8.3.8"

// NPMCache is the npm cache the tests share between runs (a directory of
// the user's cache), so a second run installs from it instead of the
// registry.
func NPMCache(t testing.TB) string {
	t.Helper()
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	dir = filepath.Join(dir, "assetctl-test-npm")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("create npm cache: %v", err)
	}
	return dir
}

// NPM runs npm with args in dir, non-interactively and with the shared
// cache, and fails the test with npm's output if it fails.
func NPM(t testing.TB, dir string, args ...string) {
	t.Helper()
	bin := Binary(t, "npm", "apt-get install -y nodejs npm")
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdin = nil
	cmd.Env = append(os.Environ(),
		"npm_config_cache="+NPMCache(t), "npm_config_yes=true", "npm_config_fund=false",
		"npm_config_audit=false", "npm_config_update_notifier=false", "npm_config_prefer_offline=true")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm %v in %s: %v\n%s", args, dir, err, out)
	}
}

// ViteStarter generates the official Vite starter for template (vanilla,
// react-ts, ...) with npm create vite and installs its dependencies, in a
// temporary directory that is removed when the test ends. It returns the
// project's directory. Nothing generated is committed: the npm registry
// (or the shared cache) provides it on every run.
func ViteStarter(t testing.TB, template string) string {
	t.Helper()
	parent := t.TempDir()
	NPM(t, parent, "create", "vite@"+CreateViteVersion, template, "--", "--template", template, "--no-interactive")
	dir := filepath.Join(parent, template)
	NPM(t, dir, "install")
	return dir
}

// viteMultiPage is a multi-page Vite project with a shared chunk, a
// dynamic import, CSS and a public/ file; vite.config.js asks for
// .vite/manifest.json.
var viteMultiPage = map[string]string{
	"package.json": `{"name":"mp","private":true,"type":"module","devDependencies":{"vite":"` + ViteVersion + `"}}`,
	"vite.config.js": `import { resolve } from 'node:path'
export default { build: { manifest: true, rollupOptions: { input: {
  main: resolve(import.meta.dirname, 'index.html'), about: resolve(import.meta.dirname, 'about/index.html') } } } }
`,
	"index.html": `<!doctype html>
<html><head><link rel="icon" href="/favicon.svg"><title>home</title></head>
<body><h1>home</h1><button id="load">load</button><p id="out"></p>
<script type="module" src="/src/main.js"></script></body></html>
`,
	"about/index.html": `<!doctype html>
<html><head><title>about</title></head><body><h1>about</h1><p id="out"></p>
<script type="module" src="/src/about.js"></script></body></html>
`,
	"src/main.js": `import './style.css'
import { label } from './shared.js'
document.getElementById('load').addEventListener('click', async () => {
  const { lazy } = await import('./lazy.js')
  document.getElementById('out').textContent = label + ' ' + lazy()
})
`,
	"src/about.js":       "import { label } from './shared.js'\ndocument.getElementById('out').textContent = label + ' about'\n",
	"src/shared.js":      "export const label = 'shared'\n",
	"src/lazy.js":        "export const lazy = () => 'lazy loaded'\n",
	"src/style.css":      "body { color: rgb(1, 2, 3) }\n",
	"public/favicon.svg": "<svg xmlns='http://www.w3.org/2000/svg'/>",
}

// ViteMultiPage writes viteMultiPage into a temporary directory, installs
// vite (ViteVersion) and runs `vite build`; it returns the dist directory:
// two pages, entries with a shared chunk, a dynamic import, CSS, a public
// file and .vite/manifest.json. "shared lazy loaded" appears in #out after
// clicking #load on /, "shared about" in #out on /about/.
func ViteMultiPage(t testing.TB) string {
	t.Helper()
	project := t.TempDir()
	for name, content := range viteMultiPage {
		p := filepath.Join(project, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	NPM(t, project, "install")
	NPM(t, project, "exec", "--", "vite", "build")
	return filepath.Join(project, "dist")
}
