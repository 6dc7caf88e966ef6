// Command benchvite measures issue 10's speed targets against baselines
// run in the same invocation (make bench-vite):
//
//   - the react-ts Vite starter: `assetctl build` (zero config) vs
//     `vite build` of the same project, whole processes, wall time and
//     peak RSS, in alternating pairs;
//   - a 10,000-file directory another tool built: `assetctl build
//     --prebuilt` vs `sha256sum` of the same files on all cores.
//
// The starter is generated with npm (create-vite and vite pinned) under
// .bench/ (git-ignored) and reused while present.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/assetctl/assetctl/internal/benchproc"
	"github.com/assetctl/assetctl/internal/sitegen"
)

// Pinned so runs compare the same tools (issue 10 names vite 8.3.8).
const (
	createVite = "9.3.0"
	vite       = "8.3.8"
)

func main() {
	dir := flag.String("dir", ".bench", "directory for generated projects and outputs")
	bin := flag.String("assetctl", "bin/assetctl", "assetctl binary to measure")
	runs := flag.Int("runs", 5, "pairs of measurements (the median is reported)")
	only := flag.String("only", "", "run only 'starter' or 'prebuilt'")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	abs, err := filepath.Abs(*dir)
	if err == nil {
		*dir = abs
		*bin, err = filepath.Abs(*bin)
	}
	if err == nil && (*only == "" || *only == "starter") {
		err = starter(ctx, *dir, *bin, *runs)
	}
	if err == nil && (*only == "" || *only == "prebuilt") {
		err = prebuilt(ctx, *dir, *bin, *runs)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchvite:", err)
		os.Exit(1)
	}
}

// npm runs npm in dir with a cache under the bench directory.
func npm(ctx context.Context, bench, dir string, args ...string) error {
	cmd := exec.CommandContext(ctx, "npm", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "npm_config_cache="+filepath.Join(bench, "npm-cache"), "npm_config_yes=true",
		"npm_config_fund=false", "npm_config_audit=false", "npm_config_update_notifier=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("npm %v: %w\n%s", args, err, out)
	}
	return nil
}

func starter(ctx context.Context, bench, bin string, runs int) error {
	project := filepath.Join(bench, "vite-react-ts")
	stamp := "create-vite=" + createVite + " vite=" + vite
	if data, _ := os.ReadFile(filepath.Join(bench, "vite-react-ts.stamp")); string(data) != stamp {
		fmt.Printf("generating %s with npm create vite@%s and vite %s...\n", project, createVite, vite)
		if err := os.RemoveAll(project); err != nil {
			return err
		}
		if err := os.MkdirAll(bench, 0o755); err != nil {
			return err
		}
		if err := npm(ctx, bench, bench, "create", "vite@"+createVite, "vite-react-ts", "--", "--template", "react-ts", "--no-interactive"); err != nil {
			return err
		}
		if err := npm(ctx, bench, project, "install"); err != nil {
			return err
		}
		if err := npm(ctx, bench, project, "install", "--save-exact", "--save-dev", "vite@"+vite); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(bench, "vite-react-ts.stamp"), []byte(stamp), 0o644); err != nil {
			return err
		}
	}
	aOut, vOut := filepath.Join(bench, "out-starter-assetctl"), filepath.Join(bench, "out-starter-vite")
	viteJS := filepath.Join(project, "node_modules", "vite", "bin", "vite.js")
	var aT, vT []time.Duration
	var aRSS, vRSS []int64
	for i := range runs + 1 {
		for _, o := range []string{aOut, vOut} {
			if err := os.RemoveAll(o); err != nil {
				return err
			}
		}
		syscall.Sync()
		d, rss, err := benchproc.Run(ctx, project, bin, "build", project, "-o", aOut)
		if err != nil {
			return err
		}
		syscall.Sync()
		vd, vrss, err := benchproc.Run(ctx, project, "node", viteJS, "build", "--outDir", vOut, "--emptyOutDir", "--logLevel", "warn")
		if err != nil {
			return err
		}
		if i == 0 {
			continue // warm-up pair: page cache, node's compile cache
		}
		aT, aRSS, vT, vRSS = append(aT, d), append(aRSS, rss), append(vT, vd), append(vRSS, vrss)
	}
	a, v := benchproc.Median(aT), benchproc.Median(vT)
	am, vm := benchproc.Median(aRSS), benchproc.Median(vRSS)
	fmt.Printf("react-ts starter, median of %d pairs (after one warm-up pair):\n", runs)
	fmt.Printf("  vite build %s:        %v, peak RSS %.1f MiB\n", vite, v.Round(time.Millisecond), float64(vm)/1024)
	fmt.Printf("  assetctl build:          %v, peak RSS %.1f MiB\n", a.Round(time.Millisecond), float64(am)/1024)
	fmt.Printf("  ratio: wall %.2fx (target <= 0.25), memory %.2fx\n", a.Seconds()/v.Seconds(), float64(am)/float64(vm))
	return nil
}

func prebuilt(ctx context.Context, bench, bin string, runs int) error {
	// The same generated site make bench-build uses (same stamp), read as
	// a directory another tool built: every file is imported.
	site := filepath.Join(bench, "site-large")
	stamp := fmt.Sprintf("files=%d bytes=%d v1", 10000, 1<<30)
	if data, _ := os.ReadFile(filepath.Join(site, ".stamp")); string(data) != stamp {
		fmt.Printf("generating %s (10,000 files, 1 GiB)...\n", site)
		if err := os.RemoveAll(site); err != nil {
			return err
		}
		if _, _, err := sitegen.Site(ctx, site, sitegen.Options{Files: 10000, Bytes: 1 << 30}); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(site, ".stamp"), []byte(stamp), 0o644); err != nil {
			return err
		}
	}
	out := filepath.Join(bench, "out-prebuilt")
	cpus := strconv.Itoa(runtime.NumCPU())
	hashCmd := fmt.Sprintf("cd %q && find . -type f ! -name '.*' -print0 | xargs -0 -P%s -n 500 sha256sum > /dev/null", site, cpus)
	if _, _, err := benchproc.Run(ctx, bench, "sh", "-c", hashCmd); err != nil { // warm the page cache
		return err
	}
	var hT, pT []time.Duration
	var rss []int64
	for range runs {
		d, _, err := benchproc.Run(ctx, bench, "sh", "-c", hashCmd)
		if err != nil {
			return err
		}
		hT = append(hT, d)
		if err := os.RemoveAll(out); err != nil {
			return err
		}
		syscall.Sync()
		d, r, err := benchproc.Run(ctx, bench, bin, "build", "--prebuilt", site, "-o", out, "--preset", "webpack")
		if err != nil {
			return err
		}
		pT, rss = append(pT, d), append(rss, r)
	}
	h, p := benchproc.Median(hT), benchproc.Median(pT)
	fmt.Printf("prebuilt directory (10,000 files, 1 GiB), median of %d runs:\n", runs)
	fmt.Printf("  sha256sum (xargs -P%s):           %v\n", cpus, h.Round(time.Millisecond))
	fmt.Printf("  assetctl build --prebuilt:        %v, peak RSS %.1f MiB   ratio %.2f (target <= 1.30)\n",
		p.Round(time.Millisecond), float64(benchproc.Median(rss))/1024, p.Seconds()/h.Seconds())
	return nil
}
