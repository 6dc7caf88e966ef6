package uploader

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// ErrRootCleanup is returned by Cleanup for a deployer of the bucket root:
// removing a whole bucket is not what cleanup is for.
var ErrRootCleanup = errors.New("cleanup of the bucket root refused")

// CleanupResult is what Cleanup removed (or, in a dry run, would remove).
type CleanupResult struct {
	Bucket string `json:"bucket"`
	Prefix string `json:"prefix"`
	DryRun bool   `json:"dryRun,omitempty"`
	// Deleted counts the objects removed: pages, assets, deploy records
	// and pending-invalidation markers.
	Deleted int `json:"deleted"`
	// Records counts the deploy records among them.
	Records int   `json:"records"`
	Bytes   int64 `json:"bytes"`
	// Builds are the build IDs the removed records named, oldest first.
	Builds   []string      `json:"builds"`
	Duration time.Duration `json:"durationNs"`
}

// Cleanup removes every object under the deployer's prefix (a PR preview's
// "pr-123/", say): what deploys published there, assets an interrupted
// deploy left before its record, the deploy records and the pending
// markers. Nothing outside the prefix is listed or deleted: prefix
// "pr-1" never touches "pr-10/". The records go last, so an interrupted
// cleanup still names what is left when it is run again. The deployer's
// Options.Invalidators are not told: a preview's pages carry a short
// max-age, and a removed key answers 403/404 at the origin.
func (d *Deployer) Cleanup(ctx context.Context) (*CleanupResult, error) {
	start := d.now()
	if d.prefix == "" {
		return nil, fmt.Errorf("clean up s3://%s: %w: give a prefix such as s3://%s/pr-123", d.opts.Bucket, ErrRootCleanup, d.opts.Bucket)
	}
	if err := d.store.Check(ctx); err != nil {
		return nil, err
	}
	res := &CleanupResult{Bucket: d.opts.Bucket, Prefix: d.prefix, DryRun: d.opts.DryRun, Builds: []string{}}
	var content, records []string
	err := d.store.List(ctx, d.prefix, func(o Object) error {
		if !strings.HasPrefix(o.Key, d.prefix) {
			return fmt.Errorf("clean up: the store listed %q outside the prefix %q", o.Key, d.prefix)
		}
		rel := o.Key[len(d.prefix):]
		res.Bytes += o.Size
		if strings.HasPrefix(rel, ".assetctl/") {
			if isRecordKey(rel) {
				res.Records++
				if id := recordBuildID(rel); id != "" {
					res.Builds = append(res.Builds, id)
				}
			}
			records = append(records, o.Key)
			return nil
		}
		content = append(content, o.Key)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list s3://%s/%s: %w", d.opts.Bucket, d.prefix, err)
	}
	sort.Strings(content)
	sort.Strings(records)
	sort.Strings(res.Builds)
	for i, id := range res.Builds {
		res.Builds[i] = id[strings.IndexByte(id, '-')+1:]
	}
	d.opts.Progress.Step("cleanup", len(content)+len(records), res.Bytes)
	for _, keys := range [][]string{content, records} {
		if err := d.store.Delete(ctx, keys); err != nil {
			res.Duration = d.now().Sub(start)
			return res, fmt.Errorf("clean up s3://%s/%s: %w (%d objects removed; run it again to finish)", d.opts.Bucket, d.prefix, err, res.Deleted)
		}
		res.Deleted += len(keys)
	}
	res.Duration = d.now().Sub(start)
	d.log.Debug("cleaned up", "prefix", d.prefix, "objects", res.Deleted, "records", res.Records)
	return res, nil
}

// recordBuildID is "<time>-<buildID>" of a record key relative to the
// prefix, for sorting by time; "" if it does not have that shape.
func recordBuildID(rel string) string {
	name := strings.TrimSuffix(rel[len(RecordDir):], ".json.gz")
	if !strings.Contains(name, "-") {
		return ""
	}
	return name
}

// LivePaths lists the output paths the newest deploy record under the
// prefix names, sorted: what the live site published. Nil when nothing was
// deployed there. It reads only the record folder.
func (d *Deployer) LivePaths(ctx context.Context) ([]string, error) {
	rem, err := d.listRecords(ctx, d.prefix+".assetctl/", true)
	if err != nil {
		return nil, err
	}
	rec := rem.latest()
	if rec == nil {
		return nil, nil
	}
	paths := make([]string, 0, len(rec.Objects))
	for p := range rec.Objects {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return paths, nil
}
