package uploader

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/assetctl/assetctl/manifest"
	"golang.org/x/sync/errgroup"
)

// Options configure a Deployer. The zero value of every field is its default.
type Options struct {
	// Bucket names the bucket in plans and summaries.
	Bucket string
	// Prefix is the folder inside the bucket ("site" or "site/"); deploy
	// never lists, writes or deletes anything outside it. Default: the
	// bucket root.
	Prefix string
	// Concurrency is how many transfers run at once. Default: 16.
	Concurrency int
	// Keep is how many of the latest deploy records protect the assets
	// they reference from pruning. Default: 3.
	Keep int
	// Grace keeps the assets of every deploy that was live at any moment
	// within this period before now. Default: 24h; negative means none.
	Grace time.Duration
	// MaxDeletes stops the prune (not the deploy) when it would delete more
	// objects than this. Default: 0, no cap.
	MaxDeletes int
	// NoPrune skips pruning. Default: prune.
	NoPrune bool
	// Rules override the default headers per output-path glob.
	Rules []Rule
	// Invalidators are told the changed page paths after publishing.
	Invalidators []Invalidator
	// Wait waits for every invalidation to complete. Default: don't wait.
	Wait bool
	// DryRun plans against the real bucket and changes nothing.
	DryRun bool
	// Verify plans from a listing of the whole prefix instead of from the
	// deploy records, and so finds and repairs objects deleted or
	// overwritten behind deploy's back (Plan.Drifted). Default: plan from
	// the records when they can vouch for the bucket, so a deploy's
	// requests grow with what changed, not with the site.
	Verify bool
	// Logger receives progress detail. Default: discard.
	Logger *slog.Logger
	// Progress receives per-step and per-file events. Default: none.
	Progress Progress
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// Deployer publishes builds to one store prefix.
type Deployer struct {
	store  Store
	opts   Options
	prefix string
	log    *slog.Logger
	now    func() time.Time
}

// New validates opts and returns a Deployer writing through store.
func New(store Store, opts Options) (*Deployer, error) {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 16
	}
	if opts.Keep <= 0 {
		opts.Keep = 3
	}
	switch {
	case opts.Grace == 0:
		opts.Grace = 24 * time.Hour
	case opts.Grace < 0:
		opts.Grace = 0
	}
	if opts.MaxDeletes < 0 {
		return nil, fmt.Errorf("new deployer: max deletes %d is negative", opts.MaxDeletes)
	}
	if err := validateRules(opts.Rules); err != nil {
		return nil, fmt.Errorf("new deployer: %w", err)
	}
	d := &Deployer{store: store, opts: opts, log: opts.Logger, now: opts.Now}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.opts.Progress == nil {
		d.opts.Progress = noProgress{}
	}
	d.prefix = strings.Trim(opts.Prefix, "/")
	if d.prefix != "" {
		d.prefix += "/"
	}
	if opts.DryRun {
		d.store = &dryRunStore{Store: store, log: d.log}
	}
	return d, nil
}

// Result is what a deploy did.
type Result struct {
	Plan          *Plan    `json:"plan"`
	DryRun        bool     `json:"dryRun,omitempty"`
	Uploaded      int      `json:"uploaded"`
	HeadersSet    int      `json:"headersSet"`
	Skipped       int      `json:"skipped"`
	Deleted       int      `json:"deleted"`
	Bytes         int64    `json:"bytes"`
	Invalidations []string `json:"invalidations"`
	// CDNs is how many invalidators were told about the changed paths.
	CDNs       int           `json:"cdns"`
	PruneError string        `json:"pruneError,omitempty"`
	Duration   time.Duration `json:"durationNs"`
}

// Deploy publishes the build in dir: (1) new fingerprinted assets, (2) the
// deploy record, (3) changed pages and un-hashed files, (4) removal of
// pages the site dropped, (5) CDN invalidation of the changed pages,
// (6) prune. A failure or cancellation in a step stops before the next
// one, so no published page ever references a missing asset; running the
// same deploy again completes it.
func (d *Deployer) Deploy(ctx context.Context, dir string) (*Result, error) {
	start := d.now()
	// Read the manifest while the bucket is listed; a bad build wins over
	// any remote error, since it is what the user must fix first.
	headers := func(o manifest.Output) Headers {
		return headersFor(d.opts.Rules, o.Path, o.ContentType, o.Hash, o.Immutable)
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type listing struct {
		rem *remote
		err error
	}
	listed := make(chan listing, 1)
	go func() {
		// The reserved folder: the deploy records and pending invalidations.
		rem, err := d.listRecords(lctx, d.prefix+".assetctl/", false)
		listed <- listing{rem, err}
	}()
	m, err := manifest.Load(dir)
	if err != nil {
		cancel()
		<-listed
		return nil, err
	}
	d.log.Debug("read manifest", "outputs", len(m.Files), "elapsed", d.now().Sub(start))
	l := <-listed
	if l.err != nil {
		return nil, l.err
	}
	var p *Plan
	if !d.opts.Verify {
		if p, err = d.planUnchanged(ctx, l.rem, m, headers); err != nil {
			return nil, err
		}
	}
	if p != nil {
		d.log.Debug("unchanged since the last complete deploy of this build", "elapsed", d.now().Sub(start))
		res := &Result{Plan: p, DryRun: d.opts.DryRun, Skipped: p.Skipped, Invalidations: []string{}}
		// Nothing to publish, but an earlier run may have left its
		// invalidation unfinished: complete it now.
		adoptPending(p, l.rem.pending, start.UTC().Format(recordTimeFormat))
		if err := d.resolveViewers(ctx, p); err != nil {
			return nil, err
		}
		err := d.invalidate(ctx, p, res, "")
		res.Duration = d.now().Sub(start)
		return res, err
	}
	var rem *remote
	if !d.opts.Verify {
		rem = d.remoteFromRecords(ctx, l.rem)
	}
	if rem == nil {
		if rem, err = d.readRemote(ctx); err != nil {
			return nil, err
		}
		d.log.Debug("listed the prefix", "objects", len(rem.objects), "records", len(rem.records), "elapsed", d.now().Sub(start))
	} else {
		d.log.Debug("planning from the deploy records", "records", len(rem.records), "elapsed", d.now().Sub(start))
	}
	p, err = d.plan(ctx, rem, planInput{m: m, src: dirSource{dir: dir}, headers: headers})
	if err != nil {
		return nil, err
	}
	d.log.Debug("planned", "heads", p.Heads, "elapsed", d.now().Sub(start))
	if err := d.resolveViewers(ctx, p); err != nil {
		return nil, err
	}
	return d.execute(ctx, p, start)
}

func (d *Deployer) execute(ctx context.Context, p *Plan, start time.Time) (*Result, error) {
	res := &Result{Plan: p, DryRun: d.opts.DryRun, Skipped: p.Skipped, Invalidations: []string{}}
	var uploaded, headersSet atomic.Int64
	var written atomic.Int64
	announce := func(step string, actions []Action) {
		if len(actions) == 0 {
			return
		}
		var total int64
		for _, a := range actions {
			total += a.Size
		}
		d.opts.Progress.Step(step, len(actions), total)
		d.log.Debug("publishing "+step, "files", len(actions), "bytes", total)
	}
	run := func(step string, actions []Action) error {
		if len(actions) == 0 {
			return nil
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(d.opts.Concurrency)
		for _, a := range actions {
			g.Go(func() error {
				if err := d.apply(gctx, p, a); err != nil {
					return err
				}
				switch a.Op {
				case OpUpload:
					uploaded.Add(1)
					written.Add(a.Size)
				case OpHeaders:
					headersSet.Add(1)
				}
				d.opts.Progress.Done(a)
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return fmt.Errorf("publish %s: %w", step, err)
		}
		// A cancelled context stops here, between steps, never half-way into the next.
		return ctx.Err()
	}
	finish := func(err error) (*Result, error) {
		res.Uploaded, res.HeadersSet, res.Bytes = int(uploaded.Load()), int(headersSet.Load()), written.Load()
		res.Duration = d.now().Sub(start)
		return res, err
	}

	// The record's bytes (ETags and bodies of the pages, gzipped) are
	// prepared while the assets upload; it is stored only after them.
	type encoded struct {
		data []byte
		err  error
	}
	recordReady := make(chan encoded, 1)
	if p.record != nil {
		go func() {
			data, err := d.encodeRecord(ctx, p)
			recordReady <- encoded{data, err}
		}()
	}
	announce("assets", p.Assets)
	if err := run("assets", p.Assets); err != nil {
		if p.record != nil {
			<-recordReady
		}
		return finish(fmt.Errorf("%w (no page was published)", err))
	}
	d.log.Debug("published assets", "elapsed", d.now().Sub(start))
	if p.record != nil {
		enc := <-recordReady
		err := enc.err
		if err == nil {
			d.opts.Progress.Step("record", 1, int64(len(enc.data)))
			err = d.store.Put(ctx, p.record.Key, bytes.NewReader(enc.data), int64(len(enc.data)),
				Headers{ContentType: "application/gzip", CacheControl: "no-store"})
		}
		if err != nil {
			return finish(fmt.Errorf("publish deploy record: %w (no page was published)", err))
		}
		d.opts.Progress.Done(Action{Op: OpUpload, Path: strings.TrimPrefix(p.Record, d.prefix), Key: p.Record, Reason: "deploy record"})
	}
	pages, last := p.Pages, []Action(nil)
	if p.record != nil && p.record.Sentinel != "" {
		for i, a := range pages {
			if a.Path == p.record.Sentinel {
				pages = append(append([]Action(nil), pages[:i]...), pages[i+1:]...)
				last = []Action{a}
				break
			}
		}
	}
	// The invalidation is recorded before any page is published, so a run
	// that stops after the pages but before the CDN accepted it leaves a
	// marker the next run completes.
	var marker string
	if len(p.Invalidate) > 0 && len(p.Pages)+len(p.Removes) > 0 && len(d.opts.Invalidators) > 0 && !d.opts.DryRun {
		var err error
		if marker, err = d.writePending(ctx, p, start); err != nil {
			return finish(fmt.Errorf("%w (no page was published)", err))
		}
	}
	announce("pages", p.Pages)
	if err := run("pages", pages); err != nil {
		return finish(err)
	}
	if len(p.Removes) > 0 {
		d.opts.Progress.Step("removes", len(p.Removes), 0)
		if err := d.store.Delete(ctx, actionKeys(p.Removes)); err != nil {
			return finish(fmt.Errorf("remove dropped pages: %w", err))
		}
		res.Deleted += len(p.Removes)
	}
	// The sentinel goes last: once it is in place the deploy is complete.
	if err := run("pages", last); err != nil {
		return finish(err)
	}
	if err := d.invalidate(ctx, p, res, marker); err != nil {
		return finish(err)
	}
	if len(p.Prune) > 0 {
		d.opts.Progress.Step("prune", len(p.Prune), 0)
		if err := d.store.Delete(ctx, actionKeys(p.Prune)); err != nil {
			// The site is published; a failed prune is retried next deploy.
			d.log.Warn("prune failed; the deploy itself succeeded", "err", err)
			res.PruneError = err.Error()
		} else {
			res.Deleted += len(p.Prune)
		}
	}
	return finish(nil)
}

func (d *Deployer) apply(ctx context.Context, p *Plan, a Action) error {
	switch a.Op {
	case OpHeaders:
		return d.store.SetHeaders(ctx, a.Key, *a.Headers)
	case OpUpload:
		o := manifest.Output{Path: a.Path, Size: a.Size, Hash: a.Headers.SHA256}
		r, c, err := p.src.open(o)
		if err != nil {
			return err
		}
		defer c.Close()
		return d.store.Put(ctx, a.Key, r, a.Size, *a.Headers)
	}
	return fmt.Errorf("apply %s to %s: unknown operation", a.Op, a.Key)
}

// encodeRecord fills in what only the bytes can tell (expected ETags of new
// pages, bodies for rollback) and encodes the record.
func (d *Deployer) encodeRecord(ctx context.Context, p *Plan) ([]byte, error) {
	rec := p.record
	uploading := map[string]bool{}
	for _, a := range p.Pages {
		if a.Op == OpUpload {
			uploading[a.Path] = true
		}
	}
	var mu sync.Mutex
	rec.Bodies = map[string][]byte{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(d.opts.Concurrency)
	for _, o := range rec.Manifest.Outputs() {
		if o.Immutable || (o.Size > maxRecordBody && !uploading[o.Path]) {
			continue
		}
		g.Go(func() error {
			if gctx.Err() != nil {
				return gctx.Err()
			}
			r, c, err := p.src.open(o)
			if err != nil {
				if errors.Is(err, ErrNotRollbackable) {
					return nil
				}
				return err
			}
			defer c.Close()
			var etag string
			if uploading[o.Path] && o.Size < 5<<20 { // below any multipart threshold
				if etag, err = expectedETag(r, o.Size); err != nil {
					return fmt.Errorf("read %s: %w", o.Path, err)
				}
			}
			var body []byte
			if o.Size <= maxRecordBody {
				body = make([]byte, o.Size)
				if _, err := r.ReadAt(body, 0); err != nil && !errors.Is(err, io.EOF) {
					return fmt.Errorf("read %s: %w", o.Path, err)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if etag != "" {
				ro := rec.Objects[o.Path]
				ro.ETag = etag
				rec.Objects[o.Path] = ro
			}
			if body != nil {
				rec.Bodies[o.Hash] = body
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// The last page uploaded (after all the others and the removals) is the
	// record's sentinel; it must have an ETag known in advance.
	for i := len(p.Pages) - 1; i >= 0; i-- {
		if a := p.Pages[i]; a.Op == OpUpload && rec.Objects[a.Path].ETag != "" {
			rec.Sentinel = a.Path
			break
		}
	}
	return rec.Encode()
}

func actionKeys(a []Action) []string {
	keys := make([]string, len(a))
	for i, x := range a {
		keys[i] = x.Key
	}
	return keys
}
