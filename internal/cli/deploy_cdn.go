package cli

import (
	"context"
	"fmt"

	"github.com/assetctl/assetctl/uploader"
	"github.com/aws/aws-sdk-go-v2/config"
)

// newInvalidators builds the CDN invalidators the flags ask for: one
// CloudFront invalidator for all --cloudfront-distribution IDs and one
// purger per --purge URL. Both map object keys in bucket to viewer paths:
// CloudFront by each distribution's origin path, a purge base URL as the
// bucket root; --origin-path overrides both.
func newInvalidators(ctx context.Context, e *env, f *deployFlags, bucket string) ([]uploader.Invalidator, error) {
	var invs []uploader.Invalidator
	if len(f.distributions) > 0 {
		// CloudFront is a global service signed in us-east-1; credentials
		// come from the same default chain as S3's.
		cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"))
		if err != nil {
			return nil, fmt.Errorf("load AWS config for CloudFront: %w", err)
		}
		cf, err := uploader.NewCloudFront(cfg, uploader.CloudFrontOptions{DistributionIDs: f.distributions,
			Bucket: bucket, OriginPath: f.originPath,
			Endpoint: f.cloudfrontEndpoint, MaxPaths: f.maxInvalidationPaths, Logger: e.log})
		if err != nil {
			return nil, err
		}
		invs = append(invs, cf)
	}
	for _, u := range f.purge {
		p, err := uploader.NewPurge(u, uploader.PurgeOptions{Logger: e.log, OriginPath: f.originPath})
		if err != nil {
			return nil, err
		}
		invs = append(invs, p)
	}
	return invs, nil
}
