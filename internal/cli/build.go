package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/assetctl/assetctl/bundler"
	"github.com/assetctl/assetctl/internal/config"
	"github.com/assetctl/assetctl/manifest"
)

func newBuildCmd(e *env) *cobra.Command {
	var (
		out, baseURL, missing, publicDir, mode        string
		prebuilt, preset                              string
		entries, targets, keepNames, exclude, include []string
		immutable                                     []string
		minify, sourcemap, sri                        bool
		workers                                       int
	)
	cmd := &cobra.Command{
		Use:   "build [SITE_DIR]",
		Short: "Bundle, fingerprint and rewrite a site into OUT_DIR with manifest.json",
		Long: `Build a site (default: the current directory) into OUT_DIR:

  - module scripts referenced from pages (and any .ts/.tsx/.jsx) are bundled
    with esbuild: minified, code-split, with source maps;
  - every other asset gets its content hash in its name (logo.8f4a2c11.png);
  - references in HTML, CSS and web manifests are rewritten to those names,
    with Subresource Integrity on scripts and stylesheets;
  - pages and well-known paths (favicon.ico, robots.txt, sitemap.xml,
    /.well-known/*) keep their names;
  - OUT_DIR/manifest.json lists every output for deploy and the origin.

Vite projects build as they are: public/ (--public-dir) is copied to the
output root under its own names; JSX settings come from tsconfig*.json or
package.json; import.meta.env and VITE_* variables from .env files (--mode);
asset, ?url, ?raw and new URL(..., import.meta.url) imports get hashed URLs.

Only what the site uses is published: pages, public/ files, well-known
names, --keep-name and --include globs, --entry points, the constant names
the serve templates pass to asset, integrity and entry (with serve: templates:
in assetctl.yaml), and everything they reference. The summary counts the
files left out; --verbose lists them.

--prebuilt DIR imports another tool's output (vite build, ng build, next
export, webpack, hugo) without renaming or rewriting anything: names the
tool hashed are immutable, everything else mutable, and a page referencing
a file DIR lacks is reported as page.html:LINE before anything is written.

OUT_DIR is replaced whole (built in a temporary directory and swapped in),
so stale files never survive and a failed build leaves it untouched.`,
		Example: `  assetctl build examples/site -o dist
  assetctl build . -o dist --base-url https://cdn.example.com/assets/
  assetctl build site -o dist --target es2020,safari15 --entry src/admin.ts
  ASSETCTL_SRI=false assetctl build site -o dist
  assetctl build my-vite-app -o dist --include 'data/*.json'
  assetctl build --prebuilt dist -o out --preset vite`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			defer buildGC()()
			if cmd.Flags().Changed("prebuilt") || prebuilt != "" {
				return runPrebuilt(e, cmd, args, prebuilt, out, preset, immutable, workers)
			}
			if cmd.Flags().Changed("preset") || cmd.Flags().Changed("immutable") {
				return fmt.Errorf("--preset and --immutable apply to --prebuilt DIR only")
			}
			site, file, outFromUser, err := loadSettings(e, cmd, args, func(f *config.File) any { return &f.Build })
			if err != nil {
				return err
			}
			if !outFromUser && file.Build.Out != "" && !filepath.IsAbs(out) {
				out = filepath.Join(filepath.Dir(file.Path), out) // relative to the config file
			}
			opts, err := bundlerOptions(config.Build{
				BaseURL: baseURL, Entry: entries, Target: targets,
				Minify: &minify, Sourcemap: &sourcemap, SRI: &sri,
				KeepName: keepNames, Exclude: exclude, MissingAssets: missing, Workers: workers,
				PublicDir: publicDir, Include: include, Mode: mode,
			}, site, out)
			if err != nil {
				return fmt.Errorf("build settings: %w", err)
			}
			opts.Logger = e.log
			if file.Serve.Templates != "" {
				// What the origin's templates name is published too (issue 10).
				if err := addTemplateRoots(&opts, file.Serve.Templates, e.log); err != nil {
					return err
				}
			}
			b, err := bundler.New(opts)
			if err != nil {
				if file.Path != "" {
					return fmt.Errorf("build settings (flags, %s* environment or %s): %w", config.EnvPrefix, file.Path, err)
				}
				return fmt.Errorf("build settings: %w", err)
			}
			defer b.Close()
			start := time.Now()
			m, err := b.Build(cmd.Context())
			if err != nil {
				return err
			}
			return printSummary(e, m, b.Omitted(), out, time.Since(start))
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "out", "o", "dist", "output directory, replaced whole by each build")
	f.StringVar(&baseURL, "base-url", "", "CDN base URL for asset references in pages (default: relative references)")
	f.StringArrayVar(&entries, "entry", nil, "extra esbuild entry point, relative to SITE_DIR (repeatable)")
	f.StringSliceVar(&targets, "target", nil, "esbuild targets, comma-separated: es2020, chrome100, firefox115, safari15, ... (default es2020)")
	f.BoolVar(&minify, "minify", true, "minify bundles")
	f.BoolVar(&sourcemap, "sourcemap", true, "write linked source maps for bundles")
	f.BoolVar(&sri, "sri", true, "add integrity and crossorigin attributes to scripts and stylesheets")
	f.StringArrayVar(&keepNames, "keep-name", nil, "glob of files served under their own name, like robots.txt (repeatable)")
	f.StringArrayVar(&exclude, "exclude", nil, "glob of source files to leave out (repeatable)")
	f.StringVar(&missing, "missing-assets", "error", "what a reference to a missing file does: error or warn")
	f.IntVar(&workers, "workers", 0, "files processed in parallel (default: one per CPU)")
	f.StringVar(&publicDir, "public-dir", "", "directory copied to the output root as is, like Vite's (default: public/ when present)")
	f.StringArrayVar(&include, "include", nil, "glob of files to publish even though nothing references them (repeatable)")
	f.StringVar(&mode, "mode", "", "mode for .env.[mode] files and import.meta.env.MODE (default production)")
	f.StringVar(&prebuilt, "prebuilt", "", "make an assetctl output of DIR, another tool's build, without renaming or rewriting it")
	f.StringVar(&preset, "preset", "auto", "with --prebuilt: the tool that built DIR, for its hashed names: "+strings.Join(bundler.PresetNames(), ", "))
	f.StringArrayVar(&immutable, "immutable", nil, "with --prebuilt: glob of files whose names carry a content hash (repeatable)")
	return cmd
}

// runPrebuilt is assetctl build --prebuilt DIR: another tool's output,
// imported unchanged with a manifest so deploy handles it like a build.
func runPrebuilt(e *env, cmd *cobra.Command, args []string, dir, out, presetName string, immutable []string, workers int) error {
	if len(args) > 0 {
		return fmt.Errorf("--prebuilt %s and SITE_DIR %s: give one of them", dir, args[0])
	}
	if dir == "" {
		return fmt.Errorf("--prebuilt needs a directory: assetctl build --prebuilt dist -o out")
	}
	preset, err := bundler.ParsePreset(presetName)
	if err != nil {
		return fmt.Errorf("--preset: %w", err)
	}
	start := time.Now()
	m, err := bundler.Import(cmd.Context(), bundler.PrebuiltOptions{
		Dir: dir, OutDir: out, Preset: preset, Immutable: immutable, Workers: workers, Logger: e.log,
	})
	if err != nil {
		return err
	}
	var pages, hashed, mutable int
	var bytes int64
	for _, f := range m.Files {
		bytes += f.Size
		switch {
		case f.Kind == manifest.KindPage:
			pages++
		case f.Immutable:
			hashed++
		default:
			mutable++
		}
	}
	_, err = fmt.Fprintf(e.stdout, "imported %s into %s: %d pages, %d immutable (hashed names), %d mutable, %s in %v; build %s\n",
		dir, out, pages, hashed, mutable, humanBytes(bytes), time.Since(start).Round(time.Millisecond), m.BuildID)
	return err
}

// buildGC tunes the collector for one build and returns the function that
// restores it. A build is a short burst of allocation (esbuild's ASTs)
// over a small live heap: collecting at 5x the live heap instead of 2x
// cut the react-ts starter's wall time by about a quarter here, and the
// soft memory limit keeps a large site's peak near where it was. GOGC and
// GOMEMLIMIT in the environment win.
func buildGC() (restore func()) {
	gc, limit := -2, int64(-1)
	if os.Getenv("GOGC") == "" {
		gc = debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		limit = debug.SetMemoryLimit(128 << 20)
	}
	return func() {
		if gc != -2 {
			debug.SetGCPercent(gc)
		}
		if limit >= 0 {
			debug.SetMemoryLimit(limit)
		}
	}
}

// bundlerOptions turns build settings (the build: section, or the build
// command's flags after config.Apply) into bundler options; assetctl build
// and assetctl dev share it so both run the same pipeline.
func bundlerOptions(c config.Build, site, out string) (bundler.Options, error) {
	opts := bundler.Options{
		SiteDir: site, OutDir: out, BaseURL: c.BaseURL, Entries: c.Entry, Target: c.Target,
		KeepNames: c.KeepName, Exclude: c.Exclude, Workers: c.Workers,
		PublicDir: c.PublicDir, Include: c.Include, Mode: c.Mode, Environ: os.Environ(),
	}
	if c.Minify != nil {
		opts.NoMinify = !*c.Minify
	}
	if c.Sourcemap != nil {
		opts.NoSourceMaps = !*c.Sourcemap
	}
	if c.SRI != nil {
		opts.NoSRI = !*c.SRI
	}
	switch c.MissingAssets {
	case "", "error":
		opts.MissingAssets = bundler.MissingError
	case "warn":
		opts.MissingAssets = bundler.MissingWarn
	default:
		return opts, fmt.Errorf("missing-assets %q: want error or warn", c.MissingAssets)
	}
	return opts, nil
}

// printSummary reports what the build wrote and how many of the site's
// files it left out (--verbose lists them).
func printSummary(e *env, m *manifest.Manifest, omitted []string, out string, took time.Duration) error {
	counts := map[manifest.Kind]int{}
	var bytes int64
	for _, f := range m.Files {
		counts[f.Kind]++
		bytes += f.Size
	}
	_, err := fmt.Fprintf(e.stdout, "built %s: %d pages, %d assets, %d bundles (%d chunks, %d source maps), %d static, %s in %v; build %s\n",
		out, counts[manifest.KindPage], counts[manifest.KindAsset], counts[manifest.KindEntry], counts[manifest.KindChunk],
		counts[manifest.KindSourceMap], counts[manifest.KindStatic], humanBytes(bytes), took.Round(time.Millisecond), m.BuildID)
	if err != nil || len(omitted) == 0 {
		return err
	}
	hint := " (--verbose lists them)"
	if e.verbose {
		hint = ":"
	}
	fmt.Fprintf(e.stdout, "left out %d unreferenced files; --include GLOB publishes one anyway%s\n", len(omitted), hint)
	if e.verbose {
		for _, o := range omitted {
			fmt.Fprintf(e.stdout, "  %s\n", o)
		}
	}
	return nil
}
