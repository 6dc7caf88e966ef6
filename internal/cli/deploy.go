package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/assetctl/assetctl/internal/config"
	"github.com/assetctl/assetctl/uploader"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// deployFlags are the deploy command's settings after flags, environment
// and config file are applied.
type deployFlags struct {
	bucket, endpoint, region string
	distributions            []string
	cloudfrontEndpoint       string
	purge                    []string
	originPath               string
	maxInvalidationPaths     int
	keep                     int
	grace                    time.Duration
	maxDeletes               int
	noPrune                  bool
	concurrency              int
	dryRun, jsonOut, wait    bool
	verify                   bool
	rollback                 string
	preview, cleanup         string
	force                    bool
	baseURL, planFile        string
}

// rollbackPrevious is --rollback given without a build ID.
const rollbackPrevious = "previous"

func newDeployCmd(e *env) *cobra.Command {
	var f deployFlags
	cmd := &cobra.Command{
		Use:   "deploy OUT_DIR --bucket s3://BUCKET[/PREFIX]",
		Short: "Upload a build to S3 (or compatible): assets first, pages last, invalidate only changed pages",
		Long: `deploy publishes the output of assetctl build to an S3 bucket prefix:

  1. new fingerprinted assets (existing ones are never read or re-sent)
  2. a deploy record (the manifest, kept under PREFIX/.assetctl/deploys/)
  3. pages and un-hashed files whose content or headers changed
  4. CDN invalidation of exactly those pages (CloudFront and/or HTTP PURGE)
  5. pruning of assets no recent deploy references (--keep, --grace)

A failure before step 3 publishes no page, so no page ever references a
missing asset; rerunning an interrupted deploy completes it. A redeploy of
an unchanged build writes nothing. Credentials come from the AWS default
chain (environment, shared profile, SSO, web identity, instance role).

Cache-Control defaults to "` + uploader.CacheImmutable + `" for
fingerprinted files and "` + uploader.CacheMutable + `" for the rest; override
per glob with deploy.rules in assetctl.yaml:

  deploy:
    bucket: s3://my-bucket/site
    rules:
      - match: "**/*.html"
        cache-control: "public, max-age=0, must-revalidate"
      - match: "fonts/**"
        content-type: font/woff2`,
		Example: `  assetctl deploy dist --bucket s3://my-bucket/site --cloudfront-distribution E2QWRUHAPOMQZL --wait
  assetctl deploy dist --bucket s3://my-bucket --dry-run
  assetctl deploy dist --bucket s3://site --endpoint http://127.0.0.1:7070 --purge http://127.0.0.1:6081/site --json
  assetctl deploy --rollback --bucket s3://my-bucket/site            # back to the previous build
  assetctl deploy --rollback 5d0c7e2a91b4f3c8 --bucket s3://my-bucket/site
  assetctl deploy dist --bucket s3://my-bucket/www --preview=pr-123 --base-url https://d111.cloudfront.net
  assetctl deploy --cleanup pr-123 --bucket s3://my-bucket/www       # remove that preview, nothing else`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file, err := config.Load(e.configPath, ".")
			if err != nil {
				return err
			}
			if err := config.Apply(cmd.Flags(), &file.Deploy, file.Path, os.Getenv); err != nil {
				return err
			}
			return runDeploy(cmd.Context(), e, &f, file.Deploy.Rules, args)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.bucket, "bucket", "", "destination, s3://BUCKET[/PREFIX] (required)")
	fl.StringVar(&f.endpoint, "endpoint", "", "S3-compatible endpoint URL (MinIO, R2, Ceph, versitygw); uses path-style addressing")
	fl.StringVar(&f.region, "region", "", "bucket region (default: from the AWS config, else us-east-1)")
	fl.StringArrayVar(&f.distributions, "cloudfront-distribution", nil, "CloudFront distribution ID to invalidate (repeatable)")
	fl.StringVar(&f.cloudfrontEndpoint, "cloudfront-endpoint", "", "CloudFront API endpoint URL (for tests against moto)")
	fl.StringArrayVar(&f.purge, "purge", nil, "edge base URL to send HTTP PURGE requests to, e.g. http://varnish:6081/site (repeatable)")
	fl.StringVar(&f.originPath, "origin-path", "", "object-key prefix the CDN serves at its root (\"/\" = bucket root, \"/www\"); default: each CloudFront distribution's origin path for the bucket, and the bucket root for --purge URLs")
	fl.IntVar(&f.maxInvalidationPaths, "max-invalidation-paths", 0, "collapse a CloudFront invalidation to a wildcard past this many paths (default 100)")
	fl.IntVar(&f.keep, "keep", 3, "recent builds whose assets are never pruned")
	fl.DurationVar(&f.grace, "grace", 24*time.Hour, "also keep the assets of every deploy live within this period")
	fl.IntVar(&f.maxDeletes, "max-deletes", 1000, "skip the prune (not the deploy) if it would delete more objects; 0 = no cap")
	fl.BoolVar(&f.noPrune, "no-prune", false, "do not prune old assets")
	fl.IntVar(&f.concurrency, "concurrency", 16, "parallel transfers")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the plan (uploads with headers, skips, deletes, invalidations) and change nothing")
	fl.BoolVar(&f.jsonOut, "json", false, "print the plan or result as JSON on stdout")
	fl.BoolVar(&f.wait, "wait", false, "wait until CDN invalidations complete")
	fl.BoolVar(&f.verify, "verify", false, "plan from a listing of the whole prefix instead of the deploy records: finds and repairs objects deleted or overwritten by hand")
	fl.StringVar(&f.rollback, "rollback", "", "republish the pages of an earlier kept deploy: --rollback [BUILD_ID] (no ID: the previous build)")
	fl.Lookup("rollback").NoOptDefVal = rollbackPrevious
	fl.StringVar(&f.preview, "preview", "", "--preview=PREFIX deploys under this key prefix (relative to the bucket root) instead of the --bucket prefix; --preview alone: pr-N of the pull request in GITHUB_EVENT_PATH")
	fl.Lookup("preview").NoOptDefVal = autoPrefix
	fl.StringVar(&f.cleanup, "cleanup", "", "--cleanup PREFIX removes every object under this key prefix (a preview), records included, and nothing else; --cleanup alone: pr-N of the pull request")
	fl.Lookup("cleanup").NoOptDefVal = autoPrefix
	fl.BoolVar(&f.force, "force", false, "let --cleanup remove the production prefix (the --bucket prefix) or a prefix holding it")
	fl.StringVar(&f.baseURL, "base-url", "", "URL where viewers reach the bucket root (e.g. https://d111.cloudfront.net); the deploy's URL is it plus the prefix's viewer path")
	fl.StringVar(&f.planFile, "plan-file", "", "also write the plan (with --dry-run) or the result as JSON to this file")
	return cmd
}

var distributionID = regexp.MustCompile(`^[A-Z0-9]{1,64}$`)

// parseBucket splits s3://BUCKET[/PREFIX].
func parseBucket(s string) (bucket, prefix string, err error) {
	if s == "" {
		return "", "", errors.New("--bucket is required: give s3://BUCKET[/PREFIX] (or deploy.bucket in assetctl.yaml, or ASSETCTL_BUCKET)")
	}
	rest, ok := strings.CutPrefix(s, "s3://")
	if !ok {
		return "", "", fmt.Errorf("--bucket %q: want s3://BUCKET[/PREFIX]", s)
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("--bucket %q: the bucket name is empty", s)
	}
	prefix = strings.Trim(prefix, "/")
	if strings.Contains(prefix, "//") || strings.Contains("/"+prefix+"/", "/../") || strings.Contains("/"+prefix+"/", "/./") {
		return "", "", fmt.Errorf("--bucket %q: the prefix must be a clean path", s)
	}
	return bucket, prefix, nil
}

func checkURL(flag, s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--%s %q: want an http:// or https:// URL with a host", flag, s)
	}
	return nil
}

func (f *deployFlags) validate() error {
	if f.endpoint != "" {
		if err := checkURL("endpoint", f.endpoint); err != nil {
			return err
		}
	}
	if f.baseURL != "" {
		if err := checkURL("base-url", f.baseURL); err != nil {
			return err
		}
	}
	if f.cloudfrontEndpoint != "" {
		if err := checkURL("cloudfront-endpoint", f.cloudfrontEndpoint); err != nil {
			return err
		}
	}
	for _, p := range f.purge {
		if err := checkURL("purge", p); err != nil {
			return err
		}
	}
	if f.originPath != "" {
		if _, err := uploader.CleanOriginPath(f.originPath); err != nil {
			return fmt.Errorf("--origin-path: %w", err)
		}
	}
	for _, id := range f.distributions {
		if !distributionID.MatchString(id) {
			return fmt.Errorf("--cloudfront-distribution %q: want an ID such as E2QWRUHAPOMQZL", id)
		}
	}
	switch {
	case f.concurrency < 1 || f.concurrency > 1024:
		return fmt.Errorf("--concurrency %d: want 1 to 1024", f.concurrency)
	case f.keep < 1:
		return fmt.Errorf("--keep %d: want at least 1 (the live deploy)", f.keep)
	case f.grace < 0:
		return fmt.Errorf("--grace %v: want a duration of zero or more", f.grace)
	case f.maxDeletes < 0:
		return fmt.Errorf("--max-deletes %d: want 0 (no cap) or more", f.maxDeletes)
	case f.maxInvalidationPaths < 0:
		return fmt.Errorf("--max-invalidation-paths %d: want 0 (default) or more", f.maxInvalidationPaths)
	}
	return nil
}

func runDeploy(ctx context.Context, e *env, f *deployFlags, rules config.HeaderRules, args []string) error {
	gh := readGitHubEnv(os.Getenv)
	var outDir, rollbackID string
	rollback := f.rollback != ""
	switch {
	case f.cleanup == autoPrefix && len(args) == 1 && !rollback && f.preview == "":
		f.cleanup = args[0] // --cleanup PREFIX
	case f.cleanup != "":
		if rollback || f.preview != "" || len(args) > 0 {
			return errors.New("--cleanup takes no OUT_DIR, --preview or --rollback: it removes a preview prefix")
		}
	case rollback && len(args) == 1 && f.rollback == rollbackPrevious:
		rollbackID = args[0] // --rollback BUILD_ID
	case rollback:
		if len(args) > 0 {
			return errors.New("--rollback takes no OUT_DIR: it republishes a deploy kept in the bucket")
		}
		if f.rollback != rollbackPrevious {
			rollbackID = f.rollback
		}
	case len(args) == 0:
		return errors.New("missing OUT_DIR: give the output directory of assetctl build (assetctl deploy dist --bucket s3://BUCKET)")
	default:
		outDir = args[0]
	}
	bucket, prefix, err := parseBucket(f.bucket)
	if err != nil {
		return err
	}
	if err := f.validate(); err != nil {
		return err
	}
	if err := rules.Validate(); err != nil {
		return err
	}
	production := prefix
	if f.cleanup != "" {
		target, err := previewPrefix("cleanup", f.cleanup, gh)
		if err != nil {
			return err
		}
		if contains(target, production) && !f.force {
			return fmt.Errorf("%w: --cleanup %q holds the production site s3://%s/%s: give the preview's prefix, or add --force", errProductionCleanup, target, bucket, production)
		}
		if forkWithoutCredentials(gh, os.Getenv) {
			// A fork's run only ever planned: there is nothing to remove.
			fmt.Fprintln(e.stderr, "::notice title=assetctl::This pull request comes from a fork, whose previews are never deployed: nothing to clean up.")
			e.publishGitHub(gh, &report{cleanup: &uploader.CleanupResult{Bucket: bucket, Prefix: target + "/", DryRun: true, Builds: []string{}}})
			return nil
		}
		return runCleanup(ctx, e, f, gh, bucket, target, production)
	}
	if f.preview != "" {
		if prefix, err = previewPrefix("preview", f.preview, gh); err != nil {
			return err
		}
		if contains(prefix, production) {
			return fmt.Errorf("--preview %q: the preview prefix holds the production site s3://%s/%s: give a prefix of its own such as pr-123", f.preview, bucket, production)
		}
	}
	notice := ""
	if forkWithoutCredentials(gh, os.Getenv) && !f.dryRun {
		notice = "This pull request comes from a fork, which gets no AWS credentials: assetctl planned against an empty bucket and deployed nothing."
		fmt.Fprintln(e.stderr, "::notice title=assetctl::"+notice)
		f.dryRun = true
	}
	urules := make([]uploader.Rule, len(rules))
	for i, r := range rules {
		urules[i] = uploader.Rule{Match: r.Match, CacheControl: r.CacheControl, ContentType: r.ContentType}
	}
	var invs []uploader.Invalidator
	var store uploader.Store
	if notice != "" {
		store = offlineStore{}
	} else {
		if invs, err = newInvalidators(ctx, e, f, bucket); err != nil {
			return err
		}
		if store, err = uploader.NewS3Store(ctx, uploader.S3Options{Bucket: bucket, Endpoint: f.endpoint, Region: f.region,
			Connections: 2 * f.concurrency}); err != nil {
			return err
		}
	}
	grace := f.grace
	if grace == 0 {
		grace = -1 // the library's zero means its default
	}
	prog := newDeployProgress(e.stderr, f.jsonOut || f.dryRun)
	d, err := uploader.New(store, uploader.Options{Bucket: bucket, Prefix: prefix, Concurrency: f.concurrency,
		Keep: f.keep, Grace: grace, MaxDeletes: f.maxDeletes, NoPrune: f.noPrune, Rules: urules,
		Invalidators: invs, Wait: f.wait, DryRun: f.dryRun, Verify: f.verify, Logger: e.log, Progress: prog})
	if err != nil {
		return err
	}
	var res *uploader.Result
	if rollback {
		res, err = d.Rollback(ctx, rollbackID)
	} else {
		res, err = d.Deploy(ctx, outDir)
	}
	prog.finish()
	rep := &report{res: res, err: err, dryRun: f.dryRun, outDir: outDir, notice: notice,
		url: siteURL(f.baseURL, prefix, f.originPath)}
	if res != nil {
		if f.jsonOut {
			if jerr := writeJSON(e.stdout, res, err); jerr != nil {
				return jerr
			}
		} else {
			writeSummary(e.stdout, res, f.dryRun)
			if rep.url != "" {
				fmt.Fprintf(e.stdout, "  url: %s\n", rep.url)
			}
		}
		if f.planFile != "" {
			if perr := writeJSONFile(f.planFile, res); perr != nil {
				return perr
			}
			rep.planFile = f.planFile
		}
	}
	if res != nil || err == nil {
		e.publishGitHub(gh, rep)
	}
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("deploy interrupted: %w (run the same command again to complete it)", err)
	}
	return err
}

// runCleanup removes the preview under target.
func runCleanup(ctx context.Context, e *env, f *deployFlags, gh githubEnv, bucket, target, production string) error {
	store, err := uploader.NewS3Store(ctx, uploader.S3Options{Bucket: bucket, Endpoint: f.endpoint, Region: f.region,
		Connections: 2 * f.concurrency})
	if err != nil {
		return err
	}
	if contains(production, target) && !f.force {
		// The preview lives inside the production prefix (production at
		// the bucket root, say): refuse if the live site has pages there.
		prod, err := uploader.New(store, uploader.Options{Bucket: bucket, Prefix: production, Logger: e.log})
		if err != nil {
			return err
		}
		live, err := prod.LivePaths(ctx)
		if err != nil {
			return fmt.Errorf("check the production site before the cleanup: %w", err)
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(target, production), "/") + "/"
		for _, p := range live {
			if strings.HasPrefix(p, rel) {
				return fmt.Errorf("%w: the live site s3://%s/%s publishes %s under --cleanup %q: give the preview's prefix, or add --force", errProductionCleanup, bucket, production, p, target)
			}
		}
	}
	d, err := uploader.New(store, uploader.Options{Bucket: bucket, Prefix: target, DryRun: f.dryRun, Logger: e.log})
	if err != nil {
		return err
	}
	res, err := d.Cleanup(ctx)
	if res != nil {
		if f.jsonOut {
			enc := json.NewEncoder(e.stdout)
			enc.SetIndent("", "  ")
			if jerr := enc.Encode(res); jerr != nil {
				return jerr
			}
		} else {
			verb := "removed"
			if res.DryRun {
				verb = "would remove"
			}
			fmt.Fprintf(e.stdout, "cleanup s3://%s/%s: %s %d objects (%s), %d deploy records, in %s\n",
				res.Bucket, res.Prefix, verb, res.Deleted, humanBytes(res.Bytes), res.Records, res.Duration.Round(time.Millisecond))
		}
		if f.planFile != "" {
			if perr := writeJSONFile(f.planFile, res); perr != nil {
				return perr
			}
		}
		e.publishGitHub(gh, &report{cleanup: res, err: err, dryRun: f.dryRun, planFile: f.planFile})
	}
	return err
}

func writeJSONFile(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode plan: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write --plan-file: %w", err)
	}
	return nil
}

func writeJSON(w io.Writer, res *uploader.Result, err error) error {
	out := struct {
		*uploader.Result
		Error string `json:"error,omitempty"`
	}{Result: res}
	if err != nil {
		out.Error = err.Error()
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// deployProgress is a progress bar on a terminal and plain step lines
// elsewhere (CI logs).
type deployProgress struct {
	w     io.Writer
	tty   bool
	quiet bool
	mu    sync.Mutex
	bar   *progressbar.ProgressBar
	step  string
}

func newDeployProgress(w io.Writer, quiet bool) *deployProgress {
	p := &deployProgress{w: w, quiet: quiet}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) && os.Getenv("CI") == "" {
		p.tty = true
	}
	return p
}

func (p *deployProgress) Step(name string, files int, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		_ = p.bar.Finish()
		p.bar = nil
	}
	p.step = name
	if p.quiet || name == "record" {
		return
	}
	if !p.tty {
		fmt.Fprintf(p.w, "%s: %d files, %s\n", name, files, humanBytes(bytes))
		return
	}
	desc := fmt.Sprintf("%-7s %d files", name, files)
	if bytes > 0 {
		p.bar = progressbar.NewOptions64(bytes, progressbar.OptionSetWriter(p.w), progressbar.OptionShowBytes(true),
			progressbar.OptionSetDescription(desc), progressbar.OptionShowCount(), progressbar.OptionClearOnFinish(),
			progressbar.OptionThrottle(100*time.Millisecond))
	} else {
		p.bar = progressbar.NewOptions(files, progressbar.OptionSetWriter(p.w), progressbar.OptionSetDescription(desc),
			progressbar.OptionShowCount(), progressbar.OptionClearOnFinish())
	}
}

func (p *deployProgress) Done(a uploader.Action) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar == nil {
		return
	}
	if p.bar.GetMax64() > 0 && a.Size > 0 {
		_ = p.bar.Add64(a.Size)
	} else if a.Size == 0 {
		_ = p.bar.Add(1)
	}
}

func (p *deployProgress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		_ = p.bar.Finish()
		p.bar = nil
	}
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
