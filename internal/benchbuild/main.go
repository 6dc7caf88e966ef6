// Command benchbuild measures assetctl build against baselines run in the
// same invocation and prints the ratios (make bench-build):
//
//   - a generated site of 10,000 files and 1 GiB: `assetctl build` wall
//     time vs `sha256sum` of the same files on all cores (xargs -P), and
//     the build's peak RSS;
//   - a JS-heavy site: bundler.Build vs esbuild's api.Build of the same
//     entry points with the same options.
//
// Generated data goes under .bench/ (git-ignored) and is reused while its
// parameters are unchanged.
package main

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/evanw/esbuild/pkg/api"

	"github.com/assetctl/assetctl/bundler"
	"github.com/assetctl/assetctl/hasher"
	"github.com/assetctl/assetctl/internal/benchproc"
	"github.com/assetctl/assetctl/internal/sitegen"
)

func main() {
	dir := flag.String("dir", ".bench", "directory for generated sites and outputs")
	bin := flag.String("assetctl", "bin/assetctl", "assetctl binary to measure")
	files := flag.Int("files", 10000, "files in the large site")
	size := flag.Int64("bytes", 1<<30, "bytes in the large site")
	runs := flag.Int("runs", 5, "measurements of each side (the median is reported)")
	only := flag.String("only", "", "run only 'large' or 'js'")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *dir, *bin, *files, *size, *runs, *only); err != nil {
		fmt.Fprintln(os.Stderr, "benchbuild:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dir, bin string, files int, size int64, runs int, only string) error {
	if only == "" || only == "large" {
		if err := large(ctx, dir, bin, files, size, runs); err != nil {
			return err
		}
	}
	if only == "" || only == "js" {
		if err := jsHeavy(ctx, dir, runs); err != nil {
			return err
		}
	}
	return nil
}

// ensure generates a site once per parameter set.
func ensure(site, stamp string, gen func() error) error {
	if data, err := os.ReadFile(filepath.Join(site, ".stamp")); err == nil && string(data) == stamp {
		return nil
	}
	if err := os.RemoveAll(site); err != nil {
		return err
	}
	if err := gen(); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(site, ".stamp"), []byte(stamp), 0o644)
}

func large(ctx context.Context, dir, bin string, files int, size int64, runs int) error {
	site := filepath.Join(dir, "site-large")
	stamp := fmt.Sprintf("files=%d bytes=%d v1", files, size)
	fmt.Printf("generating %s (%d files, %d MiB) unless present...\n", site, files, size>>20)
	if err := ensure(site, stamp, func() error {
		_, _, err := sitegen.Site(ctx, site, sitegen.Options{Files: files, Bytes: size})
		return err
	}); err != nil {
		return fmt.Errorf("generate site: %w", err)
	}
	out := filepath.Join(dir, "out-large")
	cpus := strconv.Itoa(runtime.NumCPU())
	// Same files as the build reads, on all cores, in batches.
	hashCmd := fmt.Sprintf("cd %q && find . -type f ! -name .stamp -print0 | xargs -0 -P%s -n 500 sha256sum > /dev/null", site, cpus)
	var paths []string
	err := filepath.WalkDir(site, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && d.Name() != ".stamp" {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	var hashT, goHashT, buildT, buildWarmT []time.Duration
	var peakKiB int64
	// Warm the page cache first so both sides read from memory.
	if _, _, err := benchproc.Run(ctx, "", "sh", "-c", hashCmd); err != nil {
		return err
	}
	for range runs {
		d, _, err := benchproc.Run(ctx, "", "sh", "-c", hashCmd)
		if err != nil {
			return err
		}
		hashT = append(hashT, d)
		start := time.Now()
		if _, err := hasher.Files(ctx, paths, 0); err != nil {
			return err
		}
		goHashT = append(goHashT, time.Since(start))
		if err := os.RemoveAll(out); err != nil {
			return err
		}
		// --include '**' publishes every file, referenced or not, so the
		// build does the same work as the sha256sum baseline it is compared to.
		d, rss, err := benchproc.Run(ctx, "", bin, "build", site, "-o", out, "--include", "**")
		if err != nil {
			return err
		}
		buildT = append(buildT, d)
		peakKiB = max(peakKiB, rss)
		// Rebuild into the existing output: unchanged files are linked.
		d, rss, err = benchproc.Run(ctx, "", bin, "build", site, "-o", out, "--include", "**")
		if err != nil {
			return err
		}
		buildWarmT = append(buildWarmT, d)
		peakKiB = max(peakKiB, rss)
	}
	h, g, b, w := benchproc.Median(hashT), benchproc.Median(goHashT), benchproc.Median(buildT), benchproc.Median(buildWarmT)
	fmt.Printf("large site (%d files, %d MiB), median of %d runs:\n", files, size>>20, runs)
	fmt.Printf("  sha256sum (xargs -P%s):          %v\n", cpus, h.Round(time.Millisecond))
	fmt.Printf("  hasher.Files (Go SHA-256, %s workers): %v\n", cpus, g.Round(time.Millisecond))
	fmt.Printf("  assetctl build, fresh OUT_DIR:   %v   ratio %.2f vs sha256sum (target <= 1.30), %.2f vs Go hashing alone\n", b.Round(time.Millisecond), b.Seconds()/h.Seconds(), b.Seconds()/g.Seconds())
	fmt.Printf("  assetctl build, existing OUT_DIR: %v   ratio %.2f vs sha256sum, %.2f vs Go hashing alone\n", w.Round(time.Millisecond), w.Seconds()/h.Seconds(), w.Seconds()/g.Seconds())
	fmt.Printf("  peak RSS of assetctl build:      %.1f MiB (target < 150)\n", float64(peakKiB)/1024)
	return nil
}

func jsHeavy(ctx context.Context, dir string, runs int) error {
	site := filepath.Join(dir, "site-js")
	var entries []string
	stamp := "entries=20 modules=2000 v1"
	if err := ensure(site, stamp, func() error {
		_, err := sitegen.JSSite(ctx, site, sitegen.JSOptions{})
		return err
	}); err != nil {
		return fmt.Errorf("generate JS site: %w", err)
	}
	for i := range 20 {
		entries = append(entries, fmt.Sprintf("./src/page%02d.ts", i))
	}
	abs, err := filepath.Abs(site)
	if err != nil {
		return err
	}
	esOut, err := filepath.Abs(filepath.Join(dir, "out-js-esbuild"))
	if err != nil {
		return err
	}
	opts := api.BuildOptions{
		AbsWorkingDir: abs, EntryPoints: entries, Bundle: true, Splitting: true,
		Format: api.FormatESModule, Platform: api.PlatformBrowser, Outdir: esOut, Outbase: abs,
		EntryNames: "[dir]/[name]-[hash]", ChunkNames: "chunks/[name]-[hash]",
		Write: true, Metafile: true, Sourcemap: api.SourceMapLinked, Target: api.ES2020,
		MinifyWhitespace: true, MinifyIdentifiers: true, MinifySyntax: true, LogLevel: api.LogLevelSilent,
	}
	var esT, buildT []time.Duration
	for range runs {
		if err := os.RemoveAll(esOut); err != nil {
			return err
		}
		// Flush the previous run's writes and deletes first, so neither side
		// pays for the other's writeback.
		syscall.Sync()
		start := time.Now()
		res := api.Build(opts)
		esT = append(esT, time.Since(start))
		if len(res.Errors) > 0 {
			return fmt.Errorf("esbuild: %s", res.Errors[0].Text)
		}
		out := filepath.Join(dir, "out-js")
		if err := os.RemoveAll(out); err != nil {
			return err
		}
		syscall.Sync()
		start = time.Now()
		b, err := bundler.New(bundler.Options{SiteDir: site, OutDir: out})
		if err != nil {
			return err
		}
		_, err = b.Build(ctx)
		b.Close()
		if err != nil {
			return err
		}
		buildT = append(buildT, time.Since(start))
	}
	e, b := benchproc.Median(esT), benchproc.Median(buildT)
	fmt.Printf("JS-heavy site (20 entries, 2000 TS modules), median of %d runs:\n", runs)
	fmt.Printf("  esbuild api.Build alone:         %v\n", e.Round(time.Millisecond))
	fmt.Printf("  bundler.Build (assetctl build):  %v   ratio %.2f (target <= 1.15)\n", b.Round(time.Millisecond), b.Seconds()/e.Seconds())
	return nil
}
