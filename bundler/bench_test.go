package bundler

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/evanw/esbuild/pkg/api"

	"github.com/assetctl/assetctl/hasher"
	"github.com/assetctl/assetctl/internal/sitegen"
)

// BenchmarkJSHeavy compares a build of a JS-heavy site with esbuild's
// api.Build of the same entry points and options, measured alternately in
// the same run, and reports the ratio (target <= 1.15).
func BenchmarkJSHeavy(b *testing.B) {
	site := b.TempDir()
	entries, err := sitegen.JSSite(context.Background(), site, sitegen.JSOptions{Entries: 20, Modules: 2000})
	if err != nil {
		b.Fatal(err)
	}
	points := make([]string, len(entries))
	for i, e := range entries {
		points[i] = "./" + e
	}
	esOut := filepath.Join(b.TempDir(), "esbuild")
	opts := api.BuildOptions{
		AbsWorkingDir: site, EntryPoints: points, Bundle: true, Splitting: true,
		Format: api.FormatESModule, Platform: api.PlatformBrowser, Outdir: esOut, Outbase: site,
		EntryNames: "[dir]/[name]-[hash]", ChunkNames: "chunks/[name]-[hash]",
		Write: true, Metafile: true, Sourcemap: api.SourceMapLinked, Target: api.ES2020,
		MinifyWhitespace: true, MinifyIdentifiers: true, MinifySyntax: true, LogLevel: api.LogLevelSilent,
	}
	out := filepath.Join(b.TempDir(), "dist")
	var esT, buildT time.Duration
	b.ResetTimer()
	for b.Loop() {
		os.RemoveAll(esOut)
		start := time.Now()
		if res := api.Build(opts); len(res.Errors) > 0 {
			b.Fatal(res.Errors[0].Text)
		}
		esT += time.Since(start)
		start = time.Now()
		bl, err := New(Options{SiteDir: site, OutDir: out, Workers: benchWorkers})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := bl.Build(context.Background()); err != nil {
			b.Fatal(err)
		}
		bl.Close()
		buildT += time.Since(start)
	}
	b.ReportMetric(buildT.Seconds()/esT.Seconds(), "x-vs-esbuild")
}

// BenchmarkAssets compares a build of an asset-heavy site with hashing the
// same files with hasher.Files on all cores, in the same run, and reports
// the ratio. The full 10,000-file 1 GiB comparison with sha256sum is
// `make bench-build`.
func BenchmarkAssets(b *testing.B) {
	site := b.TempDir()
	if _, _, err := sitegen.Site(context.Background(), site, sitegen.Options{
		Files: 2000, Bytes: 128 << 20, Pages: 40, Stylesheets: 10, Large: 1, LargeSize: 16 << 20,
	}); err != nil {
		b.Fatal(err)
	}
	var paths []string
	filepath.Walk(site, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			paths = append(paths, p)
		}
		return err
	})
	out := filepath.Join(b.TempDir(), "dist")
	var hashT, buildT time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if _, err := hasher.Files(context.Background(), paths, 0); err != nil {
			b.Fatal(err)
		}
		hashT += time.Since(start)
		os.RemoveAll(out)
		start = time.Now()
		bl, err := New(Options{SiteDir: site, OutDir: out})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := bl.Build(context.Background()); err != nil {
			b.Fatal(fmt.Errorf("build: %w", err))
		}
		bl.Close()
		buildT += time.Since(start)
	}
	b.ReportMetric(buildT.Seconds()/hashT.Seconds(), "x-vs-hashing")
}

var benchWorkers = func() int { n, _ := strconv.Atoi(os.Getenv("BENCH_WORKERS")); return n }()
