package uploader

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// PendingDir is the reserved folder, under the deploy prefix, that holds a
// marker for every CDN invalidation a deploy set out to make and has not
// yet completed. A deploy writes its marker before it publishes any page
// and deletes it once every CDN accepted the invalidation; the next deploy
// or rollback sends what is still pending (with the deploy's own changes)
// before it deletes the markers, so "rerun to complete" also completes
// a failed or interrupted invalidation.
const PendingDir = ".assetctl/invalidations/"

// pendingInvalidation is the content of one marker under PendingDir.
type pendingInvalidation struct {
	BuildID   string    `json:"buildID"`
	Time      time.Time `json:"time"`
	Record    string    `json:"record,omitempty"`
	CallerRef string    `json:"callerReference"`
	Paths     []string  `json:"paths"`

	key string
}

func pendingKey(prefix string, t time.Time, buildID string) string {
	return prefix + PendingDir + t.UTC().Format(recordTimeFormat) + "-" + buildID + ".json"
}

// isPendingKey reports whether rel (a key relative to the prefix) is a
// pending-invalidation marker.
func isPendingKey(rel string) bool {
	return strings.HasPrefix(rel, PendingDir) && strings.HasSuffix(rel, ".json") && !strings.Contains(rel[len(PendingDir):], "/")
}

func decodePending(key string, data []byte) (*pendingInvalidation, error) {
	var pi pendingInvalidation
	if err := json.Unmarshal(data, &pi); err != nil {
		return nil, fmt.Errorf("read pending invalidation %s: %w", key, err)
	}
	if pi.CallerRef == "" {
		return nil, fmt.Errorf("read pending invalidation %s: no caller reference", key)
	}
	pi.key = key
	return &pi, nil
}

// adoptPending adds what earlier deploys left pending to p's invalidation
// and picks p's caller reference: the pending one when p retries the same
// deploy (the newest pending marker is of the same build), so an
// invalidation the interrupted run already created is found and reused
// rather than billed twice; otherwise a reference new to this deploy.
// identity names this deploy (its record key, or its start time).
func adoptPending(p *Plan, pending []*pendingInvalidation, identity string) {
	p.pending = pending
	p.PendingInvalidations = len(pending)
	for _, pi := range pending {
		p.Invalidate = mergePaths(p.Invalidate, pi.Paths)
	}
	if len(p.Invalidate) == 0 {
		return
	}
	if n := len(pending); n > 0 && pending[n-1].BuildID == p.BuildID {
		p.CallerRef = pending[n-1].CallerRef
		return
	}
	p.CallerRef = deployRef(p.BuildID, p.PreviousBuildID, identity, p.Invalidate)
}

// writePending stores the marker of p's invalidation. It is written only
// when this deploy publishes pages; when it merely completes what earlier
// deploys left pending, their markers already say it.
func (d *Deployer) writePending(ctx context.Context, p *Plan, t time.Time) (string, error) {
	pi := pendingInvalidation{BuildID: p.BuildID, Time: t, Record: p.Record, CallerRef: p.CallerRef, Paths: p.Invalidate}
	data, err := json.Marshal(pi)
	if err != nil {
		return "", fmt.Errorf("encode pending invalidation: %w", err)
	}
	key := pendingKey(d.prefix, t, p.BuildID)
	if err := d.store.Put(ctx, key, strings.NewReader(string(data)), int64(len(data)),
		Headers{ContentType: "application/json", CacheControl: "no-store"}); err != nil {
		return "", fmt.Errorf("record pending invalidation: %w", err)
	}
	return key, nil
}

// invalidate sends p's invalidation to every CDN (waiting for it with
// Options.Wait) and then deletes marker and the pending markers p adopted.
// A CDN failure leaves every marker in place for the next run.
func (d *Deployer) invalidate(ctx context.Context, p *Plan, res *Result, marker string) error {
	if len(p.Invalidate) == 0 || d.opts.DryRun {
		return nil
	}
	if len(d.opts.Invalidators) == 0 {
		if len(p.pending) > 0 {
			d.log.Warn("earlier deploys left CDN invalidations pending; configure the CDN (--cloudfront-distribution or --purge) and deploy again to send them",
				"pending", len(p.pending), "paths", len(p.Invalidate))
		}
		return nil
	}
	for _, inv := range d.opts.Invalidators {
		id, err := inv.Invalidate(ctx, BucketPaths(d.prefix, p.Invalidate), p.CallerRef)
		if err != nil {
			return fmt.Errorf("invalidate %d CDN paths: %w (the new pages are published and the invalidation is recorded as pending: rerun to retry it)", len(p.Invalidate), err)
		}
		res.CDNs++
		if id != "" {
			res.Invalidations = append(res.Invalidations, id)
		}
		if d.opts.Wait {
			if err := inv.Wait(ctx, id); err != nil {
				return fmt.Errorf("wait for invalidation %s: %w", id, err)
			}
		}
	}
	var done []string
	if marker != "" {
		done = append(done, marker)
	}
	for _, pi := range p.pending {
		done = append(done, pi.key)
	}
	if len(done) > 0 {
		if err := d.store.Delete(ctx, done); err != nil {
			// Harmless: the next run sends these paths again, under the
			// same reference when it is of the same build.
			d.log.Warn("could not clear the pending-invalidation markers; the next deploy will invalidate their paths again", "err", err)
		}
	}
	return nil
}

// resolveViewers works out the viewer paths of p's invalidation at every
// CDN before anything is published, so a distribution whose origin cannot
// be read fails the deploy while the site is still untouched. A dry run
// reports the failure in the plan instead.
func (d *Deployer) resolveViewers(ctx context.Context, p *Plan) error {
	if len(p.Invalidate) == 0 || len(d.opts.Invalidators) == 0 {
		return nil
	}
	vp, err := cdnPaths(ctx, d.opts.Invalidators, BucketPaths(d.prefix, p.Invalidate))
	if err != nil {
		if d.opts.DryRun {
			p.ViewerPathsError = err.Error()
			return nil
		}
		return fmt.Errorf("map changed pages to CDN viewer paths: %w (nothing was published)", err)
	}
	p.ViewerPaths = vp
	return nil
}
