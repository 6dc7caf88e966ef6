package uploader

import (
	"context"
	"errors"
	"github.com/assetctl/assetctl/manifest"
	"io"
	"time"
)

// Store is what the uploader needs of an object store. Keys are full
// object keys (prefix included). *S3Store is the real one; a dry run wraps
// any Store so that reads pass through and writes do nothing.
type Store interface {
	// Check verifies that the bucket exists and the credentials may use it.
	Check(ctx context.Context) error
	// List calls fn for every object whose key starts with prefix, in one
	// paginated listing.
	List(ctx context.Context, prefix string, fn func(Object) error) error
	// Head returns key's size, ETag and headers, or ErrNotFound.
	Head(ctx context.Context, key string) (Object, error)
	// Get reads a whole (small) object, or returns ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// Put writes size bytes read from body under key with headers h,
	// streaming: body is read in sections, never held in memory whole.
	Put(ctx context.Context, key string, body io.ReaderAt, size int64, h Headers) error
	// SetHeaders replaces key's headers without rewriting its bytes.
	SetHeaders(ctx context.Context, key string, h Headers) error
	// Delete removes keys (missing keys are not an error).
	Delete(ctx context.Context, keys []string) error
}

// ErrNotFound is returned by Head and Get for a key that does not exist.
var ErrNotFound = errors.New("object not found")

// Object is one stored object as a listing or HEAD reports it.
type Object struct {
	Key          string
	Size         int64
	ETag         string // as the store reports it, quotes included
	LastModified time.Time
	Headers      Headers // filled by Head only: listings carry no metadata
}

// Headers are the HTTP headers and metadata deploy sets on an object; a
// deploy record keeps them per object, so the type is the contract's.
type Headers = manifest.Headers

// MetaSHA256 is the object metadata key holding Headers.SHA256.
const MetaSHA256 = "assetctl-sha256"
