package cli

import (
	"context"
	"errors"

	"github.com/assetctl/assetctl/uploader"
)

// newInvalidators builds the CDN invalidators the flags ask for.
func newInvalidators(_ context.Context, _ *env, f *deployFlags) ([]uploader.Invalidator, error) {
	if len(f.distributions) > 0 || len(f.purge) > 0 {
		return nil, errors.New("--cloudfront-distribution and --purge are not available in this build yet")
	}
	return nil, nil
}
