package uploader

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront/types"
	"github.com/aws/smithy-go"
	"github.com/cenkalti/backoff/v5"
	"golang.org/x/sync/errgroup"
)

// CloudFront limits and defaults.
const (
	// DefaultMaxPaths is how many paths one CloudFront invalidation may
	// name before they collapse into a single wildcard.
	DefaultMaxPaths = 100
	// cloudFrontBatchLimit is the most paths CloudFront accepts in one
	// invalidation batch.
	cloudFrontBatchLimit = 3000
)

// CloudFrontOptions configures NewCloudFront.
type CloudFrontOptions struct {
	// DistributionIDs are the distributions to invalidate; at least one.
	DistributionIDs []string
	// Bucket is the S3 bucket deploy writes to. Invalidate is given bucket
	// paths ("/" + object key); each distribution's origin for this bucket
	// (its S3 domain name) gives the origin path to strip, so the paths
	// invalidated are the ones viewers request. Default "": no lookup, the
	// origin path is OriginPath.
	Bucket string
	// OriginPath overrides the origin path read from the distributions,
	// for set-ups whose configuration cannot be read or matched (a custom
	// origin, cache behaviors routing by path): the object-key prefix the
	// distributions serve at their root, "/" for the bucket root, "/www".
	// Default "": read it (the bucket root when Bucket is empty).
	OriginPath string
	// Endpoint overrides the CloudFront API endpoint, such as a moto
	// server's URL in tests. Default: AWS's endpoint.
	Endpoint string
	// MaxPaths is the most distinct paths one invalidation names; past it
	// they collapse into one wildcard: their longest common prefix followed
	// by "*" ("/docs/*", or "/*"). Default DefaultMaxPaths (100); at most
	// 3000, CloudFront's batch limit.
	//
	// Cost bound: CloudFront bills every invalidation path beyond the first
	// 1,000 an account submits each month, and a wildcard counts as one
	// path. A deploy therefore costs at most MaxPaths paths per
	// distribution: ten large deploys a month at the default stay free.
	// The price of a wildcard is reach: "/*" also drops hashed assets from
	// the edge, which then refetches them from the origin (never wrong,
	// since their bytes never change, but a burst of origin traffic).
	MaxPaths int
	// Lookback is how many of a distribution's most recent invalidations
	// are checked for the same caller reference before a new one is
	// created, so a retried deploy reuses its earlier invalidation even on
	// servers that do not deduplicate by CallerReference themselves.
	// Default 10; negative disables the check (AWS still deduplicates an
	// identical batch).
	Lookback int
	// PollInterval is Wait's first delay between status checks; it doubles
	// (with jitter) up to MaxPollInterval. Default 5s.
	PollInterval time.Duration
	// MaxPollInterval caps Wait's delay between status checks. Default 30s.
	MaxPollInterval time.Duration
	// BusyTimeout is how long Invalidate keeps retrying, with backoff, while
	// CloudFront answers TooManyInvalidationsInProgress. Default 5m.
	BusyTimeout time.Duration
	// Logger receives progress at Debug and reuse notices at Info. Default:
	// discard.
	Logger *slog.Logger
}

// CloudFront invalidates paths in one or more CloudFront distributions
// with CreateInvalidation. It is safe for concurrent use.
type CloudFront struct {
	client   *cloudfront.Client
	dists    []string
	maxPaths int
	lookback int
	poll     time.Duration
	maxPoll  time.Duration
	busy     time.Duration
	log      *slog.Logger

	bucket      string
	override    string // the cleaned OriginPath
	hasOverride bool
	originsMu   sync.Mutex
	origins     map[string]string // distribution -> origin path read from it
}

var (
	_ Invalidator  = (*CloudFront)(nil)
	_ ViewerMapper = (*CloudFront)(nil)
)

// NewCloudFront returns a CloudFront invalidator whose client is built from
// cfg (credentials from the SDK's default chain, usually
// config.LoadDefaultConfig).
func NewCloudFront(cfg aws.Config, opts CloudFrontOptions) (*CloudFront, error) {
	if len(opts.DistributionIDs) == 0 {
		return nil, errors.New("cloudfront: no distribution ID: set --cloudfront-distribution")
	}
	for _, d := range opts.DistributionIDs {
		if d == "" || strings.ContainsAny(d, "/, ") {
			return nil, fmt.Errorf("cloudfront: distribution ID %q is not valid: want an ID such as E2QWRUHAPOMQZL", d)
		}
	}
	c := &CloudFront{
		dists:    slices.Compact(slices.Sorted(slices.Values(opts.DistributionIDs))),
		maxPaths: orDefault(opts.MaxPaths, DefaultMaxPaths),
		lookback: orDefault(opts.Lookback, 10),
		poll:     orDefault(opts.PollInterval, 5*time.Second),
		maxPoll:  orDefault(opts.MaxPollInterval, 30*time.Second),
		busy:     orDefault(opts.BusyTimeout, 5*time.Minute),
		log:      opts.Logger,
		bucket:   opts.Bucket,
		origins:  map[string]string{},
	}
	if opts.OriginPath != "" {
		op, err := CleanOriginPath(opts.OriginPath)
		if err != nil {
			return nil, fmt.Errorf("cloudfront: %w", err)
		}
		c.override, c.hasOverride = op, true
	}
	if c.maxPaths > cloudFrontBatchLimit {
		return nil, fmt.Errorf("cloudfront: max paths %d is above CloudFront's batch limit of %d", c.maxPaths, cloudFrontBatchLimit)
	}
	if c.maxPaths < 0 {
		return nil, fmt.Errorf("cloudfront: max paths %d is negative", c.maxPaths)
	}
	if c.maxPoll < c.poll {
		c.maxPoll = c.poll
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.client = cloudfront.NewFromConfig(cfg, func(o *cloudfront.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		if o.Region == "" {
			o.Region = "us-east-1" // CloudFront is global; its API signs for us-east-1
		}
	})
	return c, nil
}

// orDefault is v, or def when v is the zero value.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Invalidate creates one invalidation per distribution for paths (bucket
// paths, "/" + object key, unescaped; see CloudFrontOptions.Bucket) with
// callerRef as the CallerReference, so a retried deploy with the same
// reference reuses the invalidation it created before instead of paying
// for a new one. Each distribution is sent the viewer paths its origin
// path maps them to (none when the keys are outside it). More than
// MaxPaths paths collapse into one wildcard. No paths: nothing is sent and
// the ID is "".
//
// The ID names each distribution's invalidation, "DIST/ID,DIST/ID". On an
// error, the ID still names the distributions that were invalidated.
func (c *CloudFront) Invalidate(ctx context.Context, paths []string, callerRef string) (string, error) {
	paths, err := cleanPaths(paths)
	if err != nil {
		return "", err
	}
	if len(paths) == 0 {
		return "", nil
	}
	if callerRef == "" {
		return "", errors.New("cloudfront: empty caller reference: pass one derived from the build ID")
	}
	targets, err := c.ViewerPaths(ctx, paths)
	if err != nil {
		return "", err
	}
	ids := make([]string, len(c.dists))
	errs := make([]error, len(c.dists))
	var wg sync.WaitGroup
	for i, dist := range c.dists {
		if len(targets[i].Paths) == 0 {
			c.log.Warn("the deployed keys are outside this distribution's origin path; nothing to invalidate there",
				"distribution", dist, "origin_path", targets[i].OriginPath)
			continue
		}
		batch := c.batch(targets[i].Paths)
		wg.Go(func() {
			id, err := c.invalidate(ctx, dist, batch, callerRef)
			if err != nil {
				errs[i] = fmt.Errorf("invalidate CloudFront distribution %s: %w", dist, err)
				return
			}
			ids[i] = dist + "/" + id
		})
	}
	wg.Wait()
	return strings.Join(slices.DeleteFunc(ids, func(s string) bool { return s == "" }), ","), errors.Join(errs...)
}

// ViewerPaths maps bucket paths to each distribution's viewer paths, in
// distribution order, reading (once) the origin path of every
// distribution's origin for the bucket unless OriginPath overrides it.
func (c *CloudFront) ViewerPaths(ctx context.Context, bucketPaths []string) ([]CDNPaths, error) {
	out := make([]CDNPaths, len(c.dists))
	for i, dist := range c.dists {
		op, source, err := c.originPath(ctx, dist)
		if err != nil {
			return nil, err
		}
		out[i] = CDNPaths{CDN: "cloudfront:" + dist, OriginPath: op, Source: source, Paths: viewerPaths(op, bucketPaths)}
	}
	return out, nil
}

// ErrNoOrigin means a distribution has no origin for the deploy's bucket
// that CloudFront's configuration names, so its viewer paths are unknown.
var ErrNoOrigin = errors.New("no origin for the bucket")

// originPath is the origin path of dist's origin for the bucket.
func (c *CloudFront) originPath(ctx context.Context, dist string) (path, source string, err error) {
	if c.hasOverride {
		return c.override, "flag", nil
	}
	if c.bucket == "" {
		return "", "default", nil
	}
	c.originsMu.Lock()
	defer c.originsMu.Unlock()
	if op, ok := c.origins[dist]; ok {
		return op, "distribution", nil
	}
	out, err := c.client.GetDistributionConfig(ctx, &cloudfront.GetDistributionConfigInput{Id: aws.String(dist)})
	if err != nil {
		return "", "", fmt.Errorf("read CloudFront distribution %s's origins: %w (or give the origin path with --origin-path)", dist, err)
	}
	op, err := bucketOriginPath(out.DistributionConfig, c.bucket)
	if err != nil {
		return "", "", fmt.Errorf("CloudFront distribution %s: %w", dist, err)
	}
	c.origins[dist] = op
	c.log.Debug("read CloudFront origin path", "distribution", dist, "bucket", c.bucket, "origin_path", op)
	return op, "distribution", nil
}

// bucketOriginPath finds the origin of cfg that serves bucket (an S3 REST
// or website domain, bucket.s3[.-]...amazonaws.com) and returns its cleaned
// origin path. When several do and their origin paths differ, the one the
// default cache behavior targets wins.
func bucketOriginPath(cfg *types.DistributionConfig, bucket string) (string, error) {
	var names []string
	found := map[string]string{} // origin ID -> origin path
	var paths []string
	if cfg != nil && cfg.Origins != nil {
		for _, o := range cfg.Origins.Items {
			domain := strings.ToLower(aws.ToString(o.DomainName))
			names = append(names, domain)
			if !isBucketDomain(domain, bucket) {
				continue
			}
			op, err := CleanOriginPath(aws.ToString(o.OriginPath))
			if err != nil {
				return "", err
			}
			found[aws.ToString(o.Id)] = op
			paths = append(paths, op)
		}
	}
	paths = slices.Compact(slices.Sorted(slices.Values(paths)))
	switch {
	case len(paths) == 1:
		return paths[0], nil
	case len(paths) == 0:
		return "", fmt.Errorf("%w %q among its origins %q: give the origin path with --origin-path", ErrNoOrigin, bucket, names)
	}
	if cfg.DefaultCacheBehavior != nil {
		if op, ok := found[aws.ToString(cfg.DefaultCacheBehavior.TargetOriginId)]; ok {
			return op, nil
		}
	}
	return "", fmt.Errorf("origins for bucket %q have different origin paths %q: give the one viewers use with --origin-path", bucket, paths)
}

// isBucketDomain reports whether an origin domain names bucket's S3 REST
// or website endpoint.
func isBucketDomain(domain, bucket string) bool {
	rest, ok := strings.CutPrefix(domain, strings.ToLower(bucket)+".s3")
	if !ok || (rest != "" && rest[0] != '.' && rest[0] != '-') {
		return false
	}
	return strings.HasSuffix(rest, ".amazonaws.com") || strings.HasSuffix(rest, ".amazonaws.com.cn")
}

// batch escapes paths (sorted, distinct) and collapses them into a
// wildcard past MaxPaths.
func (c *CloudFront) batch(paths []string) []string {
	if len(paths) > c.maxPaths {
		w := wildcard(paths)
		c.log.Info("collapsing CloudFront invalidation into a wildcard", "paths", len(paths), "max_paths", c.maxPaths, "wildcard", w)
		return []string{w}
	}
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = cloudFrontPath(p)
	}
	return out
}

// cloudFrontPath escapes p the way CloudFront's invalidation API expects:
// non-ASCII bytes, controls and the characters RFC 1738 calls unsafe are
// percent-encoded, everything else is left alone (CloudFront does not match
// an over-escaped path). "*" and "?" in a file name are escaped too, so
// they are never taken for a wildcard or a query string.
func cloudFrontPath(p string) string {
	const unsafe = " <>\"#%{}|\\^~[]`*?"
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		ch := p[i]
		if ch < 0x20 || ch >= 0x7f || strings.IndexByte(unsafe, ch) >= 0 {
			fmt.Fprintf(&b, "%%%02X", ch)
		} else {
			b.WriteByte(ch)
		}
	}
	return b.String()
}

// wildcard is the narrowest single CloudFront wildcard covering every path
// in sorted (unescaped): their longest common prefix, cut back to a whole
// character and escaped, plus "*".
func wildcard(sorted []string) string {
	first, last := sorted[0], sorted[len(sorted)-1]
	n := 0
	for n < len(first) && n < len(last) && first[n] == last[n] {
		n++
	}
	prefix := first[:n]
	for len(prefix) > 0 {
		r, size := utf8.DecodeLastRuneInString(prefix)
		if r != utf8.RuneError || size > 1 {
			break
		}
		prefix = prefix[:len(prefix)-1] // part of a character the paths do not share
	}
	return cloudFrontPath(prefix) + "*"
}

// invalidate creates (or finds) the invalidation of batch in one
// distribution.
func (c *CloudFront) invalidate(ctx context.Context, dist string, batch []string, ref string) (string, error) {
	// Each round either returns or narrows batch to the paths an earlier
	// invalidation with the same reference did not cover, under a reference
	// derived from them; two rounds always suffice, the third is a guard.
	for range 3 {
		prev, err := c.find(ctx, dist, ref, c.lookback)
		if err != nil {
			return "", err
		}
		if prev == nil {
			id, createErr := c.create(ctx, dist, batch, ref)
			if createErr == nil || !isBatchAlreadyExists(createErr) {
				return id, createErr
			}
			// The reference was used with other paths: another deploy
			// raced us, or Lookback missed it. Look further back.
			if prev, err = c.find(ctx, dist, ref, 100); err != nil {
				return "", err
			}
			if prev == nil {
				return "", fmt.Errorf("caller reference %q was used before with other paths, and it is not among the 100 latest invalidations: deploy with a new build ID: %w", ref, createErr)
			}
		}
		missing := uncovered(batch, prev.paths)
		if len(missing) == 0 {
			c.log.Info("reusing CloudFront invalidation with the same caller reference", "distribution", dist, "id", prev.id, "caller_reference", ref)
			return prev.id, nil
		}
		ref = derivedRef(ref, missing)
		c.log.Info("caller reference already used for other paths; invalidating the rest under a derived reference",
			"distribution", dist, "previous", prev.id, "paths", len(missing), "caller_reference", ref)
		batch = missing
	}
	return "", fmt.Errorf("caller reference %q: earlier invalidations keep missing paths %q", ref, batch)
}

func (c *CloudFront) create(ctx context.Context, dist string, batch []string, ref string) (string, error) {
	op := func() (string, error) {
		out, err := c.client.CreateInvalidation(ctx, &cloudfront.CreateInvalidationInput{
			DistributionId: aws.String(dist),
			InvalidationBatch: &types.InvalidationBatch{
				CallerReference: aws.String(ref),
				Paths:           &types.Paths{Quantity: aws.Int32(int32(len(batch))), Items: batch},
			},
		})
		var busy *types.TooManyInvalidationsInProgress
		if errors.As(err, &busy) {
			return "", err // retried: CloudFront runs at most 3,000 paths (15 wildcards) at once
		}
		if err != nil {
			return "", backoff.Permanent(err)
		}
		return aws.ToString(out.Invalidation.Id), nil
	}
	id, err := backoff.Retry(ctx, op,
		backoff.WithBackOff(&backoff.ExponentialBackOff{InitialInterval: 2 * time.Second, RandomizationFactor: 0.3, Multiplier: 2, MaxInterval: 30 * time.Second}),
		backoff.WithMaxElapsedTime(c.busy),
		backoff.WithNotify(func(err error, d time.Duration) {
			c.log.Info("CloudFront is busy with other invalidations; retrying", "distribution", dist, "in", d, "err", err)
		}))
	if err != nil {
		return "", fmt.Errorf("create invalidation: %w", err)
	}
	c.log.Debug("created CloudFront invalidation", "distribution", dist, "id", id, "paths", len(batch), "caller_reference", ref)
	return id, nil
}

func isBatchAlreadyExists(err error) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == "InvalidationBatchAlreadyExists"
}

// priorInvalidation is an invalidation found by its caller reference.
type priorInvalidation struct {
	id    string
	paths []string
}

// find looks for an invalidation with CallerReference ref among the n most
// recent of dist. n <= 0 finds nothing.
func (c *CloudFront) find(ctx context.Context, dist, ref string, n int) (*priorInvalidation, error) {
	if n <= 0 {
		return nil, nil
	}
	list, err := c.client.ListInvalidations(ctx, &cloudfront.ListInvalidationsInput{
		DistributionId: aws.String(dist),
		MaxItems:       aws.Int32(int32(n)),
	})
	if err != nil {
		return nil, fmt.Errorf("list invalidations: %w", err)
	}
	var items []types.InvalidationSummary
	if list.InvalidationList != nil {
		items = list.InvalidationList.Items
	}
	// AWS lists newest first; not every server does.
	slices.SortStableFunc(items, func(a, b types.InvalidationSummary) int {
		return aws.ToTime(b.CreateTime).Compare(aws.ToTime(a.CreateTime))
	})
	items = items[:min(n, len(items))]
	// Fetch the candidates in parallel; the newest match wins.
	found := make([]*priorInvalidation, len(items))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(5)
	for i, it := range items {
		g.Go(func() error {
			got, err := c.client.GetInvalidation(gctx, &cloudfront.GetInvalidationInput{DistributionId: aws.String(dist), Id: it.Id})
			if err != nil {
				return fmt.Errorf("get invalidation %s: %w", aws.ToString(it.Id), err)
			}
			inv := got.Invalidation
			if inv == nil || inv.InvalidationBatch == nil || aws.ToString(inv.InvalidationBatch.CallerReference) != ref {
				return nil
			}
			var paths []string
			if inv.InvalidationBatch.Paths != nil {
				paths = inv.InvalidationBatch.Paths.Items
			}
			found[i] = &priorInvalidation{id: aws.ToString(inv.Id), paths: paths}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for _, f := range found {
		if f != nil {
			return f, nil
		}
	}
	return nil, nil
}

// uncovered lists the paths of batch that no path of prev invalidates
// (equal, or matched by a trailing-"*" wildcard).
func uncovered(batch, prev []string) []string {
	var out []string
	for _, p := range batch {
		covered := slices.ContainsFunc(prev, func(q string) bool {
			if w, ok := strings.CutSuffix(q, "*"); ok {
				return strings.HasPrefix(p, w)
			}
			return p == q
		})
		if !covered {
			out = append(out, p)
		}
	}
	return out
}

// derivedRef is a caller reference for the paths an earlier invalidation
// with ref did not cover; it is the same on every retry.
func derivedRef(ref string, paths []string) string {
	h := sha256.Sum256([]byte(strings.Join(paths, "\n")))
	return ref + "+" + hex.EncodeToString(h[:])[:12]
}

// Wait polls each distribution's invalidation (id as returned by
// Invalidate) with backoff until CloudFront reports it complete
// ("Completed" on AWS, "COMPLETED" on moto), or ctx ends.
func (c *CloudFront) Wait(ctx context.Context, id string) error {
	if id == "" {
		return nil
	}
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for part := range strings.SplitSeq(id, ",") {
		dist, inv, ok := strings.Cut(part, "/")
		if !ok || dist == "" || inv == "" {
			return fmt.Errorf("wait for CloudFront invalidation %q: want DISTRIBUTION/ID[,DISTRIBUTION/ID...]", id)
		}
		wg.Go(func() {
			if err := c.wait(ctx, dist, inv); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("wait for CloudFront invalidation %s in distribution %s: %w", inv, dist, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (c *CloudFront) wait(ctx context.Context, dist, id string) error {
	b := &backoff.ExponentialBackOff{InitialInterval: c.poll, RandomizationFactor: 0.2, Multiplier: 2, MaxInterval: c.maxPoll}
	b.Reset()
	for {
		out, err := c.client.GetInvalidation(ctx, &cloudfront.GetInvalidationInput{DistributionId: aws.String(dist), Id: aws.String(id)})
		if err != nil {
			return err
		}
		status := ""
		if out.Invalidation != nil {
			status = aws.ToString(out.Invalidation.Status)
		}
		if strings.EqualFold(status, "Completed") {
			c.log.Debug("CloudFront invalidation completed", "distribution", dist, "id", id)
			return nil
		}
		d := b.NextBackOff()
		c.log.Debug("waiting for CloudFront invalidation", "distribution", dist, "id", id, "status", status, "next_check", d)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		case <-t.C:
		}
	}
}
