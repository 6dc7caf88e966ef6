// Package bundler turns a website's source directory into a deployable
// output directory: it bundles JS/TS/CSS entry points with esbuild, names
// every other asset by its content hash (logo.8f4a2c11.png), rewrites the
// references in pages, stylesheets and web manifests to those names
// (propagating hashes, so a changed image renames the CSS that uses it),
// and writes manifest.json, the contract with deploy and the origin.
//
// A Builder is reusable: the dev server calls Build again after each change
// and only what changed is re-hashed or re-bundled (esbuild's incremental
// context stays alive between calls). Output is written to a temporary
// directory next to OutDir and swapped in whole, so OutDir is either the
// previous complete build or the new one, never a mix, and stale files
// never survive.
package bundler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/evanw/esbuild/pkg/api"

	"github.com/assetctl/assetctl/manifest"
)

// MissingAssets says what a reference to a missing local file does.
type MissingAssets int

const (
	// MissingError fails the build (the default).
	MissingError MissingAssets = iota
	// MissingWarn logs a warning and leaves the reference as written.
	MissingWarn
)

// Options configure a Builder. The zero value of every field but SiteDir
// and OutDir is a sensible default.
type Options struct {
	// SiteDir is the site's source root. Required.
	SiteDir string
	// OutDir is the output directory, replaced whole by each build.
	// Required; it must not be SiteDir or contain it. If it exists it must
	// be empty or an earlier build's output (it holds manifest.json).
	OutDir string
	// BaseURL, when set (https://cdn.example.com/assets/), makes the asset
	// references in pages absolute URLs under it, and the URLs of files
	// that code imports (import logo from './logo.svg'). Default: relative
	// references as written in pages; root-relative URLs (/src/logo.1a2b3c4d.svg)
	// for imported files.
	BaseURL string
	// Entries are extra esbuild entry points (site-relative paths), in
	// addition to the module scripts found in pages. Default: none.
	Entries []string
	// Target lists esbuild targets: "es2020", "esnext", "chrome100",
	// "firefox115", "safari15", "edge100", "ios15", "opera90". Default:
	// ["es2020"].
	Target []string
	// NoMinify turns minification off. Default: minify.
	NoMinify bool
	// NoSourceMaps turns source maps of bundles off. Default: linked
	// source maps next to each bundle.
	NoSourceMaps bool
	// NoSRI turns off the integrity and crossorigin attributes added to
	// <script> and <link rel=stylesheet> tags. Default: SRI on.
	NoSRI bool
	// KeepNames are extra doublestar patterns (site-relative) of files
	// served under their own name, like the built-in well-known paths
	// (favicon.ico, robots.txt, sitemap.xml, .well-known/**,
	// apple-touch-icon*.png). Default: none.
	KeepNames []string
	// Exclude are doublestar patterns of source files to leave out.
	// Default: none (dot files, node_modules and assetctl.yaml are always
	// left out, .well-known is kept).
	Exclude []string
	// MissingAssets says what a reference to a missing file does.
	// Default: MissingError.
	MissingAssets MissingAssets
	// PublicDir is the directory (relative to SiteDir, or absolute) whose
	// files are copied to the output root as they are, under their own
	// names and mutable, like Vite's public/. Default: "public" when the
	// site has one; a PublicDir given but missing is an error.
	PublicDir string
	// Include are doublestar patterns (site-relative) of files published
	// even though nothing references them. Default: none; pages, public
	// files, well-known names, KeepNames and Entries are always published,
	// and whatever they reference.
	Include []string
	// Mode is Vite's mode: it picks the .env.[mode] files and sets
	// import.meta.env.MODE, DEV and PROD and process.env.NODE_ENV.
	// Default: ModeProduction.
	Mode string
	// Environ is the process environment (KEY=value), whose VITE_*
	// variables override those of the .env files. Default: none.
	Environ []string
	// Workers bounds the files processed at once. Default: GOMAXPROCS.
	Workers int
	// Logger receives warnings and debug detail. Default: discard.
	Logger *slog.Logger
}

// The modes assetctl build and assetctl dev use; any other name is allowed
// and reads its own .env.[mode] files.
const (
	ModeProduction  = "production"
	ModeDevelopment = "development"
)

// wellKnown are the paths browsers and crawlers ask for by name.
// Feeds are here too: readers subscribe to them by URL.
var wellKnown = []string{
	"favicon.ico", "robots.txt", "sitemap.xml", "sitemap*.xml", ".well-known/**",
	"apple-touch-icon*.png", "browserconfig.xml", "humans.txt", "ads.txt", "app-ads.txt",
	"opensearch.xml", "**/feed.xml", "**/rss.xml", "**/atom.xml", "**/*.rss", "**/*.atom",
}

// Builder builds one site into one output directory, again and again.
// Its methods must not be called concurrently.
type Builder struct {
	opts      Options
	site      string // absolute, symlinks resolved: what is walked
	siteReal  string // the same; kept apart for escape checks
	siteGiven string // absolute, as given (for change hints)
	out       string // absolute
	outReal   string // absolute, parent's symlinks resolved (to skip it inside the site)
	base      string // BaseURL with a trailing slash, or ""
	keep      []string
	public    string // absolute public directory, "" when there is none
	mode      string
	target    api.Target
	engines   []api.Engine
	workers   int
	log       *slog.Logger

	mu      sync.Mutex
	closed  bool
	es      api.BuildContext
	esKey   string
	digests map[string]digestEntry // plain files by source path
	scans   map[string]scanEntry   // rewritable files by source path
	omitted []string               // source files the last build left out
	// envObject is set once code is seen using import.meta.env whole
	// (not only its keys); see viteDefines.
	envObject atomic.Bool
}

// digestEntry caches a plain file's hash while its stat stays the same.
type digestEntry struct {
	stat statKey
	hash digestResult
}

// New validates opts and returns a Builder. It does no I/O beyond
// resolving the two directories.
func New(opts Options) (*Builder, error) {
	if opts.SiteDir == "" {
		return nil, errors.New("no site directory: pass SITE_DIR")
	}
	if opts.OutDir == "" {
		return nil, errors.New("no output directory: pass -o OUT_DIR")
	}
	site, err := filepath.Abs(opts.SiteDir)
	if err != nil {
		return nil, fmt.Errorf("resolve site directory: %w", err)
	}
	fi, err := os.Stat(site)
	if err != nil {
		return nil, fmt.Errorf("site directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("site directory %s is not a directory", opts.SiteDir)
	}
	siteReal, err := filepath.EvalSymlinks(site)
	if err != nil {
		return nil, fmt.Errorf("resolve site directory: %w", err)
	}
	out, err := filepath.Abs(opts.OutDir)
	if err != nil {
		return nil, fmt.Errorf("resolve output directory: %w", err)
	}
	if out == site || out == siteReal || within(site, out) || within(siteReal, out) {
		return nil, fmt.Errorf("output directory %s contains the site directory %s: choose another -o, the build replaces it whole", opts.OutDir, opts.SiteDir)
	}
	// Walk the real directory: a site given as a symlink is still walked.
	b := &Builder{
		opts: opts, site: siteReal, siteReal: siteReal, siteGiven: site, out: out, outReal: out,
		workers: opts.Workers, log: opts.Logger,
		digests: map[string]digestEntry{}, scans: map[string]scanEntry{},
	}
	if parent, err := filepath.EvalSymlinks(filepath.Dir(out)); err == nil {
		b.outReal = filepath.Join(parent, filepath.Base(out))
	}
	if b.outReal == siteReal || within(siteReal, b.outReal) {
		return nil, fmt.Errorf("output directory %s contains the site directory %s: choose another -o, the build replaces it whole", opts.OutDir, opts.SiteDir)
	}
	if b.workers <= 0 {
		b.workers = runtime.GOMAXPROCS(0)
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if opts.BaseURL != "" {
		u, err := url.Parse(opts.BaseURL)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return nil, fmt.Errorf("base URL %q: want an absolute http(s) URL like https://cdn.example.com/assets/", opts.BaseURL)
		}
		b.base = strings.TrimSuffix(opts.BaseURL, "/") + "/"
	}
	b.keep = append(append([]string(nil), wellKnown...), opts.KeepNames...)
	b.mode = opts.Mode
	if b.mode == "" {
		b.mode = ModeProduction
	}
	if strings.ContainsAny(b.mode, "/\\ ") {
		return nil, fmt.Errorf("mode %q: want a name like production or development", b.mode)
	}
	if err := b.findPublic(opts.PublicDir); err != nil {
		return nil, err
	}
	for _, p := range slices.Concat(opts.KeepNames, opts.Exclude, opts.Include) {
		if !doublestar.ValidatePattern(p) {
			return nil, fmt.Errorf("pattern %q is not a valid glob", p)
		}
	}
	targets := opts.Target
	if len(targets) == 0 {
		targets = []string{"es2020"}
	}
	b.target, b.engines, err = parseTargets(targets)
	if err != nil {
		return nil, err
	}
	for _, e := range opts.Entries {
		if strings.HasPrefix(filepath.ToSlash(filepath.Clean(e)), "../") || filepath.IsAbs(e) {
			return nil, fmt.Errorf("entry point %q: want a path inside the site directory", e)
		}
	}
	if opts.MissingAssets != MissingError && opts.MissingAssets != MissingWarn {
		return nil, fmt.Errorf("unknown MissingAssets mode %d", opts.MissingAssets)
	}
	return b, nil
}

// within reports whether p is strictly inside dir.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && !strings.HasPrefix(rel, "..")
}

// Build builds the site into OutDir and returns the manifest it wrote.
// changed optionally names the files (absolute or site-relative) known to
// have changed since the last Build; Build also notices other changes by
// size and modification time. On error OutDir is left as it was. Errors
// caused by the site's content are *BuildError.
func (b *Builder) Build(ctx context.Context, changed ...string) (*manifest.Manifest, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	for _, c := range changed {
		rel := c
		if filepath.IsAbs(c) {
			for _, root := range []string{b.site, b.siteGiven} {
				if r, err := filepath.Rel(root, c); err == nil && !strings.HasPrefix(r, "..") {
					rel = r
					break
				}
			}
		}
		rel = filepath.ToSlash(filepath.Clean(rel))
		delete(b.digests, rel)
		delete(b.scans, rel)
	}
	if err := checkOutDir(b.out); err != nil {
		return nil, err
	}
	files, err := b.walk(ctx)
	if err != nil {
		return nil, err
	}
	p, err := b.plan(ctx, files)
	if err != nil {
		return nil, err
	}
	m, err := b.write(ctx, p)
	if err != nil {
		return nil, err
	}
	b.omitted = p.omitted
	b.log.Debug("built", "site", b.site, "out", b.out, "files", len(m.Files), "buildID", m.BuildID)
	return m, nil
}

// Omitted lists the site's files (site-relative, sorted) that the last
// successful Build left out because nothing published references them.
func (b *Builder) Omitted() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.omitted)
}

// Close releases esbuild's incremental state. The Builder cannot be used
// afterwards.
func (b *Builder) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.es != nil {
		b.es.Dispose()
		b.es = nil
	}
	return nil
}
