package bundler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/bmatcuk/doublestar/v4"
	"golang.org/x/sync/errgroup"

	"github.com/assetctl/assetctl/hasher"
	"github.com/assetctl/assetctl/manifest"
)

// Preset names the tool that built a prebuilt directory; it picks how
// content-hashed names are recognised.
type Preset string

// The presets Import knows. PresetAuto (the zero value) picks one from
// what the directory holds.
const (
	PresetAuto    Preset = ""
	PresetVite    Preset = "vite"
	PresetAngular Preset = "angular"
	PresetNext    Preset = "next"
	PresetWebpack Preset = "webpack"
	PresetHugo    Preset = "hugo"
)

// PresetNames lists the preset names a user may give, for flags and errors.
func PresetNames() []string {
	return []string{"auto", string(PresetVite), string(PresetAngular), string(PresetNext), string(PresetWebpack), string(PresetHugo)}
}

// ParsePreset reads a preset name ("auto" or "" is PresetAuto).
func ParsePreset(s string) (Preset, error) {
	switch s {
	case "", "auto":
		return PresetAuto, nil
	case "vite", "angular", "next", "webpack", "hugo":
		return Preset(s), nil
	}
	return "", fmt.Errorf("unknown preset %q: want one of %s", s, strings.Join(PresetNames(), ", "))
}

// hashedNames are the name patterns (doublestar globs plus a regexp on the
// base name) of each tool's content-hashed outputs, used where the tool
// left no manifest saying which files it hashed.
var hashedNames = map[Preset][]*regexp.Regexp{
	// assets/index-BXq3m2Zb.js: Rollup/Rolldown's [name]-[hash] (8 base64url).
	PresetVite: {regexp.MustCompile(`^assets/(?:.+/)?[^/]+-[A-Za-z0-9_-]{8}\.[A-Za-z0-9]+$`)},
	// main-ABCDEFGH.js (application builder), main.0123456789abcdef.js (browser builder).
	PresetAngular: {regexp.MustCompile(`(?:^|/)[^/]+-[A-Z0-9]{8}\.(?:js|mjs|css|map)$`), regexp.MustCompile(`(?:^|/)[^/]+\.[0-9a-f]{16,20}\.[A-Za-z0-9]+$`)},
	// Next serves everything under _next/static with immutable caching.
	PresetNext:    {regexp.MustCompile(`^_next/static/`)},
	PresetWebpack: {webpackHash},
	PresetHugo:    {hugoHash},
	presetGeneric: {webpackHash, hugoHash},
}

var (
	// [name].[contenthash].js: 8–32 hex digits between dots.
	webpackHash = regexp.MustCompile(`(?:^|/)[^/]+\.[0-9a-f]{8,32}\.[A-Za-z0-9]+(?:\.map)?$`)
	// resources.Fingerprint: style.<64 hex>.css (sha256), or md5/sha384/sha512.
	hugoHash = regexp.MustCompile(`(?:^|/)[^/]+\.(?:[0-9a-f]{32}|[0-9a-f]{64}|[0-9a-f]{96}|[0-9a-f]{128})\.[A-Za-z0-9]+$`)
)

// PrebuiltOptions configure Import. The zero value of every field but Dir
// and OutDir is the default.
type PrebuiltOptions struct {
	// Dir is the directory another tool built (Vite's dist/). Required.
	Dir string
	// OutDir receives the files, unchanged and under the same names, plus
	// manifest.json. Required; it is replaced whole, like a build's.
	OutDir string
	// Preset picks the hashed-name rules. Default: PresetAuto.
	Preset Preset
	// Immutable are extra doublestar patterns (Dir-relative) of files whose
	// names carry a content hash. Default: none.
	Immutable []string
	// Workers bounds the files hashed at once. Default: GOMAXPROCS.
	Workers int
	// Logger receives debug detail. Default: discard.
	Logger *slog.Logger
}

// ErrAlreadyOutput is returned by Import for a directory that already holds
// an assetctl manifest: deploy it as it is.
var ErrAlreadyOutput = errors.New("directory is already an assetctl build output")

// Import makes an assetctl output of a directory another tool built,
// without renaming or rewriting anything: names the tool content-hashed
// (from Vite's .vite/manifest.json where present, else the preset's name
// patterns and Immutable) are immutable, pages and everything else
// mutable. Every local reference of every page must exist in Dir; else
// a *BuildError lists each page:line and nothing is written. Files are
// hard-linked into OutDir where the file system allows, else copied.
func Import(ctx context.Context, opts PrebuiltOptions) (*manifest.Manifest, error) {
	if opts.Dir == "" {
		return nil, errors.New("no prebuilt directory: pass --prebuilt DIR")
	}
	if opts.OutDir == "" {
		return nil, errors.New("no output directory: pass -o OUT_DIR")
	}
	for _, p := range opts.Immutable {
		if !doublestar.ValidatePattern(p) {
			return nil, fmt.Errorf("--immutable %q is not a valid glob", p)
		}
	}
	if opts.Preset != PresetAuto {
		if _, ok := hashedNames[opts.Preset]; !ok {
			return nil, fmt.Errorf("unknown preset %q: want one of %s", opts.Preset, strings.Join(PresetNames(), ", "))
		}
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("resolve prebuilt directory: %w", err)
	}
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("prebuilt directory: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("prebuilt directory %s is not a directory", opts.Dir)
	}
	out, err := filepath.Abs(opts.OutDir)
	if err != nil {
		return nil, fmt.Errorf("resolve output directory: %w", err)
	}
	if out == dir || within(out, dir) || within(dir, out) {
		return nil, fmt.Errorf("output directory %s overlaps the prebuilt directory %s: choose another -o", opts.OutDir, opts.Dir)
	}
	if data, err := os.ReadFile(filepath.Join(dir, manifest.FileName)); err == nil {
		if _, perr := manifest.Parse(manifest.FileName, data); perr == nil {
			return nil, fmt.Errorf("%s: %w: deploy it directly (assetctl deploy %s)", opts.Dir, ErrAlreadyOutput, opts.Dir)
		}
		return nil, fmt.Errorf("%s/%s: assetctl writes its own manifest there: rename the tool's file or move it into a sub-directory", opts.Dir, manifest.FileName)
	}
	if err := checkOutDir(out); err != nil {
		return nil, err
	}

	files, err := listPrebuilt(ctx, dir)
	if err != nil {
		return nil, err
	}
	var pages []string
	for _, rel := range files {
		if isPage(rel) {
			pages = append(pages, rel)
		}
	}
	if len(pages) == 0 {
		return nil, fmt.Errorf("prebuilt directory %s has no pages (.html): point --prebuilt at the tool's output directory (dist/, build/, out/, public/)", opts.Dir)
	}
	present := make(map[string]bool, len(files))
	for _, rel := range files {
		present[rel] = true
	}
	if msgs := checkPrebuiltPages(dir, pages, present); len(msgs) > 0 {
		return nil, &BuildError{Messages: msgs}
	}
	preset := opts.Preset
	vite, err := readViteManifest(dir)
	if err != nil {
		return nil, err
	}
	if preset == PresetAuto {
		preset = detectPreset(dir, vite != nil)
		log.Debug("prebuilt preset", "preset", string(preset))
	}
	immutable := func(rel string) bool {
		if vite != nil && vite.hashed[rel] {
			return true
		}
		for _, p := range opts.Immutable {
			if ok, _ := doublestar.Match(p, rel); ok {
				return true
			}
		}
		for _, re := range hashedNames[preset] {
			if re.MatchString(rel) {
				return true
			}
		}
		return false
	}

	st, err := newStaging(out)
	if err != nil {
		return nil, err
	}
	defer st.discard()
	tmp := st.dir
	m := &manifest.Manifest{Version: manifest.Version, Files: make(map[string]manifest.File, len(files))}
	var mu sync.Mutex
	var dirs sync.Map
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for _, rel := range files {
		g.Go(func() error {
			d, size, err := placeFile(gctx, filepath.Join(dir, filepath.FromSlash(rel)), filepath.Join(tmp, filepath.FromSlash(rel)), &dirs)
			if err != nil {
				return fmt.Errorf("copy %s: %w", rel, err)
			}
			f := manifest.File{Path: rel, Hash: d.Hex(), Integrity: d.Integrity(), Size: size,
				ContentType: contentType(rel), Immutable: immutable(rel) && !isPage(rel), Kind: manifest.KindStatic}
			switch {
			case isPage(rel):
				f.Kind = manifest.KindPage
			case f.Immutable && isMap(rel):
				f.Kind = manifest.KindSourceMap
			case f.Immutable:
				f.Kind = manifest.KindAsset
			}
			if vite != nil {
				vite.annotate(rel, &f)
			}
			mu.Lock()
			m.Files[rel] = f
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	m.BuildID = m.ComputeBuildID()
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("prebuilt output has an inconsistent manifest: %w", err)
	}
	if err := st.commit(ctx, m); err != nil {
		return nil, err
	}
	return m, nil
}

// listPrebuilt lists a prebuilt directory's files (slash paths, sorted),
// leaving out the tools' own bookkeeping (.vite/, dot files other than
// .well-known) that no browser asks for.
func listPrebuilt(ctx context.Context, dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(abs string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("read prebuilt directory: %w", err)
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if abs == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, abs)
		rel = filepath.ToSlash(rel)
		dot := strings.HasPrefix(d.Name(), ".") && !strings.HasPrefix(rel, ".well-known")
		if d.IsDir() {
			if dot {
				return filepath.SkipDir
			}
			return nil
		}
		if dot {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			target, err := filepath.EvalSymlinks(abs)
			if err != nil || (target != dir && !within(target, dir)) {
				return fmt.Errorf("%s: symlink leaves the prebuilt directory: copy the file in instead", rel)
			}
			if fi, err := os.Stat(target); err != nil || !fi.Mode().IsRegular() {
				return nil
			}
		} else if !d.Type().IsRegular() {
			return nil
		}
		files = append(files, rel)
		return nil
	})
	sort.Strings(files)
	return files, err
}

// checkPrebuiltPages reports every local reference of every page that
// names a file the directory lacks, as page:line, like a build does.
func checkPrebuiltPages(dir string, pages []string, present map[string]bool) []Message {
	var msgs []Message
	for _, pg := range pages {
		src, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(pg)))
		if err != nil {
			msgs = append(msgs, Message{File: pg, Text: fmt.Sprintf("read page: %v", err)})
			continue
		}
		rec := &recorder{}
		var sink bytes.Buffer
		if err := rewriteHTML(&sink, src, rec); err != nil {
			var be *BuildError
			if errors.As(locate(err, pg), &be) {
				msgs = append(msgs, be.Messages...)
			}
			continue
		}
		for _, r := range rec.refs {
			if r.Kind == refLink || r.Kind == refSourceMap {
				continue // links may be routes; a missing map is harmless
			}
			parts, ok := localURL(r.URL)
			if !ok {
				continue
			}
			rel, inside := resolveRel(pg, parts.path)
			if !inside {
				msgs = append(msgs, Message{File: pg, Line: r.Line, Text: fmt.Sprintf("reference %q escapes the directory", strings.TrimSpace(r.URL))})
				continue
			}
			if rel == "." || isDirURL(parts.path) || present[rel] || present[path.Join(rel, "index.html")] {
				continue
			}
			msgs = append(msgs, Message{File: pg, Line: r.Line, Text: fmt.Sprintf("missing asset %q: the directory has no %s", strings.TrimSpace(r.URL), rel)})
		}
	}
	sortMessages(msgs)
	return msgs
}

// detectPreset guesses the tool from what it leaves behind.
func detectPreset(dir string, viteManifest bool) Preset {
	exists := func(p string) bool { _, err := os.Stat(filepath.Join(dir, p)); return err == nil }
	switch {
	case viteManifest:
		return PresetVite
	case exists("_next/static"):
		return PresetNext
	case exists("3rdpartylicenses.txt") || exists("ngsw.json") || exists("browser/index.html"):
		return PresetAngular
	case exists("assets"):
		return PresetVite
	}
	return presetGeneric
}

// presetGeneric is auto's choice when nothing names the tool: webpack's
// and Hugo's hash patterns (hex digits between dots), which an
// unhashed name does not match by accident.
const presetGeneric Preset = "generic"

// viteManifest is what Vite's .vite/manifest.json (build.manifest: true)
// says: which files it hashed, and for each chunk what it loads.
type viteManifest struct {
	hashed map[string]bool
	chunks map[string]viteChunk // by output file
}

type viteChunk struct {
	File           string   `json:"file"`
	IsEntry        bool     `json:"isEntry"`
	IsDynamicEntry bool     `json:"isDynamicEntry"`
	Imports        []string `json:"imports"`
	DynamicImports []string `json:"dynamicImports"`
	CSS            []string `json:"css"`
	Assets         []string `json:"assets"`
}

// readViteManifest reads .vite/manifest.json (or Vite 4's manifest.json
// beside it); nil when there is none.
func readViteManifest(dir string) (*viteManifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, ".vite", "manifest.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read .vite/manifest.json: %w", err)
	}
	var raw map[string]viteChunk
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("read .vite/manifest.json: %w: rebuild with vite build", err)
	}
	v := &viteManifest{hashed: map[string]bool{}, chunks: map[string]viteChunk{}}
	for _, c := range raw {
		// A chunk's file is hashed unless it is a page (HTML entries are
		// listed too) or Vite was told to keep names.
		if c.File != "" && !isPage(c.File) {
			v.hashed[c.File] = true
			v.chunks[c.File] = c
		}
		for _, f := range append(append([]string(nil), c.CSS...), c.Assets...) {
			v.hashed[f] = true
		}
	}
	// imports name manifest keys; map them to files.
	for file, c := range v.chunks {
		c.Imports = mapKeys(raw, c.Imports)
		c.DynamicImports = mapKeys(raw, c.DynamicImports)
		v.chunks[file] = c
	}
	return v, nil
}

func mapKeys(raw map[string]viteChunk, keys []string) []string {
	var out []string
	for _, k := range keys {
		if c, ok := raw[k]; ok && c.File != "" {
			out = append(out, c.File)
		}
	}
	return out
}

// annotate fills a file's chunk graph from the Vite manifest.
func (v *viteManifest) annotate(rel string, f *manifest.File) {
	c, ok := v.chunks[rel]
	if !ok || !f.Immutable || path.Ext(rel) != ".js" {
		return
	}
	f.Kind = manifest.KindChunk
	if c.IsEntry {
		f.Kind = manifest.KindEntry
	}
	f.Imports, f.DynamicImports, f.CSS = c.Imports, c.DynamicImports, c.CSS
}

// placeFile hard-links src to dst (copying when the file system cannot
// link) and hashes the bytes.
func placeFile(ctx context.Context, src, dst string, dirs *sync.Map) (hasher.Digest, int64, error) {
	parent := filepath.Dir(dst)
	if _, ok := dirs.Load(parent); !ok {
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return hasher.Digest{}, 0, err
		}
		dirs.Store(parent, true)
	}
	if err := os.Link(src, dst); err == nil {
		return hasher.File(ctx, dst)
	}
	in, err := os.Open(src)
	if err != nil {
		return hasher.Digest{}, 0, err
	}
	defer in.Close()
	outF, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return hasher.Digest{}, 0, err
	}
	d, n, err := hasher.Copy(ctx, outF, io.Reader(in))
	if cerr := outF.Close(); err == nil {
		err = cerr
	}
	return d, n, err
}
