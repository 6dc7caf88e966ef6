package uploader

import "context"

// Invalidator removes paths from a CDN's cache. It is given bucket paths,
// "/" + object key (prefix included, unescaped), and maps them to the paths
// its viewers request (see ViewerMapper): CloudFront by the origin path of
// its origin for the bucket, Purge by its OriginPath option.
//
// Deploy calls it only for mutable content (pages and un-hashed files) that
// changed; hashed assets are never invalidated (ARCHITECTURE.md invariant 1).
type Invalidator interface {
	// Invalidate requests removal of paths. callerRef is new to each
	// deploy and the same when an interrupted deploy is retried, so a
	// retry does not create a second invalidation. Returns an ID (may be
	// empty for purge APIs).
	Invalidate(ctx context.Context, paths []string, callerRef string) (id string, err error)
	// Wait blocks until invalidation id has completed (no-op for purge APIs).
	Wait(ctx context.Context, id string) error
}
