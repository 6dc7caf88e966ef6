package uploader

import (
	"context"
	"fmt"
	"strings"

	"github.com/assetctl/assetctl/manifest"
)

// Rollback republishes the pages of an earlier kept deploy, buildID, or
// when buildID is empty, of the newest kept deploy of a different build
// than the live one. Its assets are still in place (pruning keeps the
// assets of the last Keep deploys); if any is missing, nothing is written.
// The pages are published with the headers they had then, a new deploy
// record marks the rollback, and the changed pages are invalidated.
func (d *Deployer) Rollback(ctx context.Context, buildID string) (*Result, error) {
	start := d.now()
	rem, err := d.readRemote(ctx)
	if err != nil {
		return nil, err
	}
	live := rem.latest()
	if live == nil {
		return nil, fmt.Errorf("roll back: no deploy records under s3://%s/%s%s: %w", d.opts.Bucket, d.prefix, RecordDir, ErrNotRollbackable)
	}
	var target *Record
	for i := len(rem.records) - 1; i >= 0; i-- {
		r := rem.records[i]
		if (buildID == "" && r.BuildID != live.BuildID) || (buildID != "" && r.BuildID == buildID) {
			target = r
			break
		}
	}
	if target == nil {
		var ids []string
		for _, r := range rem.records {
			ids = append(ids, r.BuildID+" ("+r.Time.UTC().Format("2006-01-02 15:04:05Z")+")")
		}
		want := "an earlier build than the live " + live.BuildID
		if buildID != "" {
			want = "build " + buildID
		}
		return nil, fmt.Errorf("roll back: no kept deploy of %s; kept deploys: %s: %w", want, strings.Join(ids, ", "), ErrNotRollbackable)
	}
	if err := target.Load(); err != nil {
		return nil, err
	}
	for path, o := range target.Objects {
		if _, ok := rem.objects[path]; o.Immutable && !ok {
			return nil, fmt.Errorf("roll back to %s: asset %s is no longer in the bucket (pruned): %w", target.BuildID, path, ErrNotRollbackable)
		}
	}
	p, err := d.plan(ctx, rem, planInput{m: target.Manifest, src: recordSource{r: target}, rollback: true,
		headers: func(o manifest.Output) Headers {
			if ro, ok := target.Objects[o.Path]; ok {
				return ro.Headers
			}
			return headersFor(d.opts.Rules, o.Path, o.ContentType, o.Hash, o.Immutable)
		}})
	if err != nil {
		return nil, err
	}
	if err := d.resolveViewers(ctx, p); err != nil {
		return nil, err
	}
	return d.execute(ctx, p, start)
}
