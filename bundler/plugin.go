package bundler

import (
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/evanw/esbuild/pkg/api"
)

// The esbuild plugin below gives bundled code the import forms Vite
// projects use and esbuild lacks: `?url` and `?raw` suffixes, imports of
// root-absolute paths (`/vite.svg` from public/, `/src/x.ts` from the
// root), and `new URL('./img.png', import.meta.url)`, which is rewritten
// to a `?url` import so the file gets its hashed name like every other
// asset import.

// The plugin's namespaces: a public file imported by URL, and a site file
// imported for its URL.
const (
	publicNamespace = "assetctl-public"
	assetNamespace  = "assetctl-asset"
)

// assetMarker stands for a site file's final URL inside esbuild's output
// until the file has its hashed name (see replaceMarkers): the bundle is
// written after the asset, like a page after its images, so an asset
// imported from JS gets the same name and URL as one linked from a page.
var assetMarker = regexp.MustCompile(`assetctl-asset:([0-9a-f]+):`)

func markerFor(rel string) string { return "assetctl-asset:" + hex.EncodeToString([]byte(rel)) + ":" }

// assetImportPattern matches the file types an import turns into a URL.
var assetImportPattern = func() string {
	var exts []string
	for ext := range assetLoaders {
		exts = append(exts, regexp.QuoteMeta(ext[1:]))
	}
	sort.Strings(exts)
	return `(?i)\.(` + strings.Join(exts, "|") + `)$`
}()

// newURLPattern matches new URL('./x.png', import.meta.url) with a plain
// string literal, the form Vite rewrites at build time; template literals
// with substitutions stay as written, as in Vite.
var newURLPattern = regexp.MustCompile(`new\s+URL\(\s*(?:'([^'\n$]+)'|"([^"\n$]+)"|` + "`([^`\\n$]+)`" + `)\s*,\s*import\.meta\.url\s*\)`)

// bareEnvPattern finds import.meta.env used other than as import.meta.env.KEY.
var bareEnvPattern = regexp.MustCompile(`import\.meta\.env(?:[^.\w$]|$|\.\.)`)

// sourceLoaders are the loaders of the code files the new URL rewrite
// reads; other files are left to esbuild.
var sourceLoaders = map[string]api.Loader{
	".js": api.LoaderJS, ".mjs": api.LoaderJS, ".jsx": api.LoaderJSX,
	".ts": api.LoaderTS, ".mts": api.LoaderTS, ".tsx": api.LoaderTSX,
}

// vitePlugin builds the plugin for a site root and its public directory
// (absolute; "" when there is none).
// bareEnv is called when a site source uses import.meta.env whole.
func vitePlugin(site, public string, bareEnv func()) api.Plugin {
	return api.Plugin{Name: "assetctl-vite", Setup: func(pb api.PluginBuild) {
		pb.OnResolve(api.OnResolveOptions{Filter: `\?(url|raw)$`}, func(a api.OnResolveArgs) (api.OnResolveResult, error) {
			p, q, _ := strings.Cut(a.Path, "?")
			if strings.HasPrefix(p, "/") {
				if pub := publicFile(public, p); pub != "" {
					if q == "url" {
						return api.OnResolveResult{Path: p, Namespace: publicNamespace}, nil
					}
					return api.OnResolveResult{Path: pub, Suffix: "?raw"}, nil
				}
				p = "." + p
				a.ResolveDir = site
			}
			r := pb.Resolve(p, api.ResolveOptions{Importer: a.Importer, ResolveDir: a.ResolveDir, Kind: a.Kind})
			if len(r.Errors) > 0 {
				return api.OnResolveResult{Errors: r.Errors}, nil
			}
			if q == "url" && r.Namespace == "file" && siteAsset(site, r.Path) != "" {
				return api.OnResolveResult{Path: r.Path, Namespace: assetNamespace}, nil
			}
			return api.OnResolveResult{Path: r.Path, Namespace: r.Namespace, Suffix: "?" + q}, nil
		})
		pb.OnResolve(api.OnResolveOptions{Filter: assetImportPattern, Namespace: "file"}, func(a api.OnResolveArgs) (api.OnResolveResult, error) {
			// url() in bundled CSS stays with esbuild (relative to the
			// stylesheet); imports from code get the marker.
			if a.Kind != api.ResolveJSImportStatement && a.Kind != api.ResolveJSDynamicImport && a.Kind != api.ResolveJSRequireCall {
				return api.OnResolveResult{}, nil
			}
			if strings.HasPrefix(a.Path, "/") && publicFile(public, a.Path) != "" {
				return api.OnResolveResult{Path: a.Path, Namespace: publicNamespace}, nil
			}
			p, dir := a.Path, a.ResolveDir
			if strings.HasPrefix(p, "/") {
				p, dir = "."+p, site
			}
			r := pb.Resolve(p, api.ResolveOptions{Importer: a.Importer, ResolveDir: dir, Kind: a.Kind})
			if len(r.Errors) > 0 || r.Namespace != "file" || siteAsset(site, r.Path) == "" {
				return api.OnResolveResult{}, nil
			}
			return api.OnResolveResult{Path: r.Path, Namespace: assetNamespace}, nil
		})
		pb.OnLoad(api.OnLoadOptions{Filter: `.*`, Namespace: assetNamespace}, func(a api.OnLoadArgs) (api.OnLoadResult, error) {
			js := "export default " + strconv.Quote(markerFor(siteAsset(site, a.Path))) + ";\n"
			return api.OnLoadResult{Contents: &js, Loader: api.LoaderJS, WatchFiles: []string{a.Path}}, nil
		})
		pb.OnResolve(api.OnResolveOptions{Filter: `^/[^/]`}, func(a api.OnResolveArgs) (api.OnResolveResult, error) {
			if a.Kind == api.ResolveEntryPoint {
				return api.OnResolveResult{}, nil
			}
			if pub := publicFile(public, a.Path); pub != "" {
				return api.OnResolveResult{Path: a.Path, Namespace: publicNamespace}, nil
			}
			if _, err := os.Stat(filepath.Join(site, filepath.FromSlash(a.Path))); err == nil {
				r := pb.Resolve("."+a.Path, api.ResolveOptions{Importer: a.Importer, ResolveDir: site, Kind: a.Kind})
				if len(r.Errors) > 0 {
					return api.OnResolveResult{Errors: r.Errors}, nil
				}
				return api.OnResolveResult{Path: r.Path, Namespace: r.Namespace}, nil
			}
			return api.OnResolveResult{}, nil
		})
		pb.OnLoad(api.OnLoadOptions{Filter: `.*`, Namespace: publicNamespace}, func(a api.OnLoadArgs) (api.OnLoadResult, error) {
			// A public file keeps its URL: the import is that URL.
			js := "export default " + strconv.Quote(a.Path) + ";\n"
			return api.OnLoadResult{Contents: &js, Loader: api.LoaderJS}, nil
		})
		pb.OnLoad(api.OnLoadOptions{Filter: `.*`, Namespace: "file"}, func(a api.OnLoadArgs) (api.OnLoadResult, error) {
			switch a.Suffix {
			case "?raw", "?url":
				data, err := os.ReadFile(a.Path)
				if err != nil {
					return api.OnLoadResult{}, fmt.Errorf("read %s: %w", a.Path, err)
				}
				s := string(data)
				loader := api.LoaderText
				if a.Suffix == "?url" {
					loader = api.LoaderFile
				}
				return api.OnLoadResult{Contents: &s, Loader: loader}, nil
			}
			loader, ok := sourceLoaders[path.Ext(a.Path)]
			if !ok || strings.Contains(a.Path, string(filepath.Separator)+"node_modules"+string(filepath.Separator)) {
				return api.OnLoadResult{}, nil
			}
			data, err := os.ReadFile(a.Path)
			if err != nil {
				return api.OnLoadResult{}, fmt.Errorf("read %s: %w", a.Path, err)
			}
			if bareEnvPattern.Match(data) {
				bareEnv()
			}
			// Returning the bytes read saves esbuild reading them again.
			out, _ := rewriteNewURL(string(data))
			return api.OnLoadResult{Contents: &out, Loader: loader}, nil
		})
	}}
}

// rewriteNewURL turns each new URL('./x', import.meta.url) into
// new URL(__assetctl_url_N, import.meta.url) with an import of './x?url'
// appended at the end (imports are hoisted, and appending keeps every
// line where it was for source maps).
func rewriteNewURL(src string) (string, bool) {
	if !strings.Contains(src, "import.meta.url") {
		return src, false
	}
	var imports strings.Builder
	n := 0
	out := newURLPattern.ReplaceAllStringFunc(src, func(m string) string {
		sub := newURLPattern.FindStringSubmatch(m)
		spec := sub[1] + sub[2] + sub[3]
		if !strings.HasPrefix(spec, "./") && !strings.HasPrefix(spec, "../") && !strings.HasPrefix(spec, "/") {
			return m
		}
		id := fmt.Sprintf("__assetctl_url_%d", n)
		n++
		fmt.Fprintf(&imports, "import %s from %s;", id, strconv.Quote(spec+"?url"))
		// Keep the match's line breaks so every later line stays put.
		return "new URL(" + id + ", import.meta.url)" + strings.Repeat("\n", strings.Count(m, "\n"))
	})
	if n == 0 {
		return src, false
	}
	return out + "\n" + imports.String() + "\n", true
}

// siteAsset returns the site-relative path of an imported file that the
// site publishes itself, or "" for one outside it or in node_modules,
// which esbuild copies as before.
func siteAsset(site, abs string) string {
	rel, err := filepath.Rel(site, abs)
	if err != nil || !within(abs, site) {
		return ""
	}
	rel = filepath.ToSlash(rel)
	for _, seg := range strings.Split(rel, "/") {
		if seg == "node_modules" || strings.HasPrefix(seg, ".") {
			return ""
		}
	}
	return rel
}

// publicFile returns the file of the public directory a root-absolute URL
// path names, or "".
func publicFile(public, urlPath string) string {
	if public == "" {
		return ""
	}
	p := filepath.Join(public, filepath.FromSlash(path.Clean(urlPath)))
	if !within(p, public) {
		return ""
	}
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
		return p
	}
	return ""
}
