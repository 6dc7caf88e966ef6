package bundler

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/evanw/esbuild/pkg/api"
)

// esOutput is one file esbuild produced, before it gets its final name.
type esOutput struct {
	rel       string // esbuild's name relative to the site root ("js/app-ABCD2345.js")
	contents  []byte
	entry     string   // source path of the entry point it is the bundle of, if any
	imports   []string // esbuild names of statically imported outputs
	dynamic   []string // esbuild names of dynamically imported outputs
	cssBundle string   // esbuild name of the entry's stylesheet bundle
}

// esResult is what one esbuild run produced.
type esResult struct {
	outputs map[string]*esOutput // by esbuild name
	inputs  map[string]bool      // every source file esbuild read
}

// assetLoaders make files imported from JS or url() in bundled CSS
// separate outputs, renamed by content hash like every other asset.
var assetLoaders = func() map[string]api.Loader {
	m := map[string]api.Loader{}
	for _, ext := range []string{".png", ".jpg", ".jpeg", ".gif", ".webp", ".avif", ".svg", ".ico", ".bmp",
		".woff", ".woff2", ".ttf", ".otf", ".eot", ".mp4", ".webm", ".mp3", ".ogg", ".wav", ".wasm", ".pdf"} {
		m[ext] = api.LoaderFile
	}
	return m
}()

// bundle runs esbuild on the entry points (site-relative), reusing the
// incremental context when the entry points are the same as last time.
func (b *Builder) bundle(ctx context.Context, entries []string) (*esResult, error) {
	proj, err := b.loadProject(entries)
	if err != nil {
		return nil, err
	}
	key := strings.Join(entries, "\x00") + "\x01" + proj.key()
	if b.es != nil && b.esKey != key {
		b.es.Dispose()
		b.es = nil
	}
	if b.es == nil {
		points := make([]string, len(entries))
		for i, e := range entries {
			points[i] = "./" + e
		}
		sourcemap := api.SourceMapLinked
		if b.opts.NoSourceMaps {
			sourcemap = api.SourceMapNone
		}
		ctx, cerr := api.Context(api.BuildOptions{
			AbsWorkingDir:     b.site,
			EntryPoints:       points,
			Bundle:            true,
			Splitting:         true,
			Format:            api.FormatESModule,
			Platform:          api.PlatformBrowser,
			Outdir:            b.site, // never written (Write: false); outputs sit beside their sources
			Outbase:           b.site,
			EntryNames:        "[dir]/[name]-[hash]",
			ChunkNames:        "chunks/[name]-[hash]",
			AssetNames:        "[dir]/[name]-[hash]",
			Write:             false,
			Metafile:          true,
			Sourcemap:         sourcemap,
			Target:            b.target,
			Engines:           b.engines,
			MinifyWhitespace:  !b.opts.NoMinify,
			MinifyIdentifiers: !b.opts.NoMinify,
			MinifySyntax:      !b.opts.NoMinify,
			Charset:           api.CharsetUTF8,
			Loader:            assetLoaders,
			LogLevel:          api.LogLevelSilent,
			Define:            proj.define,
			Tsconfig:          proj.tsconfig,
			JSX:               proj.jsx,
			JSXImportSource:   proj.jsxSrc,
			Plugins:           []api.Plugin{vitePlugin(b.site, b.public, func() { b.envObject.Store(true) })},
		})
		if cerr != nil {
			return nil, esbuildError(cerr.Errors)
		}
		b.es, b.esKey = ctx, key
	}
	// esbuild does not take a context; cancel its build when ctx ends.
	stop := context.AfterFunc(ctx, b.es.Cancel)
	res := b.es.Rebuild()
	stop()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(res.Errors) > 0 {
		return nil, sfcHint(esbuildError(res.Errors))
	}
	if b.envObject.Load() && !proj.wholeEnv {
		// Code uses import.meta.env whole: build again with it defined.
		return b.bundle(ctx, entries)
	}
	if len(res.Warnings) > 0 {
		for _, m := range esbuildError(res.Warnings).Messages {
			b.log.Warn("esbuild: " + m.String())
		}
	}
	var meta struct {
		Inputs  map[string]json.RawMessage `json:"inputs"`
		Outputs map[string]struct {
			Imports []struct {
				Path     string `json:"path"`
				Kind     string `json:"kind"`
				External bool   `json:"external"`
			} `json:"imports"`
			EntryPoint string `json:"entryPoint"`
			CSSBundle  string `json:"cssBundle"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal([]byte(res.Metafile), &meta); err != nil {
		return nil, fmt.Errorf("read esbuild metafile: %w", err)
	}
	r := &esResult{outputs: map[string]*esOutput{}, inputs: map[string]bool{}}
	for in := range meta.Inputs {
		r.inputs[in] = true
	}
	for _, of := range res.OutputFiles {
		rel, err := filepath.Rel(b.site, of.Path)
		if err != nil {
			return nil, fmt.Errorf("place esbuild output %s: %w", of.Path, err)
		}
		rel = filepath.ToSlash(rel)
		o := &esOutput{rel: rel, contents: of.Contents}
		if mo, ok := meta.Outputs[rel]; ok {
			o.entry = mo.EntryPoint
			o.cssBundle = mo.CSSBundle
			for _, im := range mo.Imports {
				if im.External {
					continue
				}
				switch im.Kind {
				case "dynamic-import":
					o.dynamic = append(o.dynamic, im.Path)
				default:
					o.imports = append(o.imports, im.Path)
				}
			}
		}
		r.outputs[rel] = o
	}
	return r, nil
}

// esbuildError turns esbuild's messages into a *BuildError.
func esbuildError(ms []api.Message) *BuildError {
	be := &BuildError{}
	for _, m := range ms {
		msg := Message{Text: m.Text}
		if m.Location != nil {
			msg.File = filepath.ToSlash(m.Location.File)
			msg.Line = m.Location.Line
			msg.Column = m.Location.Column + 1
		}
		be.Messages = append(be.Messages, msg)
	}
	sortMessages(be.Messages)
	return be
}

// sfcHint points a user importing Vue or Svelte single-file components,
// which need their framework's compiler, at the way that works.
func sfcHint(be *BuildError) *BuildError {
	for i, m := range be.Messages {
		if strings.HasPrefix(m.Text, "No loader is configured for \".vue\"") || strings.HasPrefix(m.Text, "No loader is configured for \".svelte\"") {
			be.Messages[i].Text += ": single-file components need their framework's compiler; build with vite and publish its output with assetctl build --prebuilt dist"
		}
	}
	return be
}

// parseTargets reads targets like "es2020", "esnext" and "chrome100".
func parseTargets(ts []string) (api.Target, []api.Engine, error) {
	es := map[string]api.Target{
		"esnext": api.ESNext, "es5": api.ES5, "es2015": api.ES2015, "es6": api.ES2015, "es2016": api.ES2016,
		"es2017": api.ES2017, "es2018": api.ES2018, "es2019": api.ES2019, "es2020": api.ES2020,
		"es2021": api.ES2021, "es2022": api.ES2022, "es2023": api.ES2023, "es2024": api.ES2024,
	}
	engines := map[string]api.EngineName{
		"chrome": api.EngineChrome, "edge": api.EngineEdge, "firefox": api.EngineFirefox,
		"safari": api.EngineSafari, "ios": api.EngineIOS, "opera": api.EngineOpera,
	}
	target := api.DefaultTarget
	var out []api.Engine
	for _, t := range ts {
		t = strings.ToLower(strings.TrimSpace(t))
		if v, ok := es[t]; ok {
			target = v
			continue
		}
		name := strings.TrimRight(t, "0123456789.")
		ver := t[len(name):]
		e, ok := engines[name]
		if !ok || ver == "" {
			return 0, nil, fmt.Errorf("target %q: want es2015…es2024, esnext, or a browser with a version like chrome100, firefox115, safari15, edge100, ios15, opera90", t)
		}
		out = append(out, api.Engine{Name: e, Version: ver})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return target, out, nil
}

// finalStem strips esbuild's "-HASH" from a name: "app-ABCD2345" is "app".
func finalStem(stem string) string {
	if i := strings.LastIndexByte(stem, '-'); i > 0 && len(stem)-i-1 == 8 {
		return stem[:i]
	}
	return stem
}

// isMap reports whether an esbuild output is a source map.
func isMap(rel string) bool { return path.Ext(rel) == ".map" }
