package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/assetctl/assetctl/origin"
	"github.com/assetctl/assetctl/uploader"
)

// newManifestSource is the serve command's --manifest: s3://BUCKET[/PREFIX]
// reads the live deploy's manifest from the bucket, anything else is a
// build output directory.
func newManifestSource(ctx context.Context, manifestFlag, endpoint, region string) (origin.ManifestSource, error) {
	if strings.HasPrefix(manifestFlag, "s3://") {
		return newBucketManifestSource(ctx, manifestFlag, endpoint, region)
	}
	if manifestFlag == "" {
		return nil, errors.New("--manifest is required: give the build output directory (dist) or s3://BUCKET[/PREFIX] of the deploy")
	}
	return origin.DirSource(manifestFlag), nil
}

// newBucketManifestSource reads the manifest of the newest deploy record
// under s3://BUCKET[/PREFIX], through the same S3 client deploy uses
// (endpoint and region as for deploy).
func newBucketManifestSource(ctx context.Context, bucketURL, endpoint, region string) (origin.ManifestSource, error) {
	bucket, prefix, err := parseBucket(bucketURL)
	if err != nil {
		// parseBucket speaks of deploy's --bucket; keep only what is wrong.
		msg := err.Error()
		if _, rest, ok := strings.Cut(msg, "\": "); ok && strings.HasPrefix(msg, "--bucket") {
			msg = rest
		}
		return nil, fmt.Errorf("--manifest %q: %s", bucketURL, msg)
	}
	store, err := uploader.NewS3Store(ctx, uploader.S3Options{Bucket: bucket, Endpoint: endpoint, Region: region,
		// A poll that cannot reach the store should fail within seconds
		// and leave the next poll to try again, not retry for minutes.
		MaxAttempts: 3, MaxBackoff: 2 * time.Second, Connections: 4})
	if err != nil {
		return nil, fmt.Errorf("manifest source: %w", err)
	}
	return origin.BucketSource(s3Records{store}, prefix), nil
}

// s3Records adapts the uploader's S3 client to origin.BucketReader.
type s3Records struct{ s *uploader.S3Store }

var _ origin.BucketReader = s3Records{}

func (r s3Records) List(ctx context.Context, prefix string, fn func(key, etag string) error) error {
	return r.s.List(ctx, prefix, func(o uploader.Object) error { return fn(o.Key, o.ETag) })
}

func (r s3Records) Get(ctx context.Context, key, ifNoneMatch string) ([]byte, string, error) {
	data, etag, err := r.s.GetIfNoneMatch(ctx, key, ifNoneMatch)
	if errors.Is(err, uploader.ErrNotModified) {
		return nil, etag, fmt.Errorf("%w: %w", origin.ErrNotModified, err)
	}
	return data, etag, err
}
