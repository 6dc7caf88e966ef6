package shardedapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"
)

// This file is the contract of the generic document store that the origin
// server (origin/, assetctl serve) builds on. The signatures are settled;
// the bodies are being filled in (they return errNotImplemented until then).

// ErrPreconditionFailed means a conditional write's expectation did not hold:
// the document's revision is not the one the caller last saw (a lost update
// prevented), or it exists when the caller required that it did not.
var ErrPreconditionFailed = errors.New("shardedapi: precondition failed")

var errNotImplemented = errors.New("shardedapi: documents: not implemented yet")

// CollectionConfig declares one collection of JSON documents.
type CollectionConfig struct {
	// Name is the collection's name in URLs and keys: [a-z][a-z0-9_-]{0,62}.
	Name string
	// Unique lists top-level string fields whose values must be unique
	// across every shard (e.g. "email" for users), enforced through the
	// catalog's uniqueness claims. Compared case-insensitively. Default none.
	Unique []string
}

// DocumentStoreOptions configure a DocumentStore.
type DocumentStoreOptions struct {
	// Collections are the collections the store accepts; any other name is
	// ErrUnknownCollection. At least one is required.
	Collections []CollectionConfig
	// Cache is the cache-aside layer reads go through and writes
	// invalidate. Default nil: every read goes to the shard.
	Cache EntryCache
	// MaxBodyBytes caps a document's JSON size. Default 1 MiB.
	MaxBodyBytes int
	// Logger receives the store's logs. Default: the Cluster's logger.
	Logger *slog.Logger
}

// ErrUnknownCollection means a collection name was not configured.
var ErrUnknownCollection = errors.New("shardedapi: unknown collection")

// Document is one JSON document of a collection. IDs are chosen by the
// caller (1..128 bytes of [A-Za-z0-9._~-]) and routed by Key{ID:
// collection + "/" + id}.
type Document struct {
	Collection string
	ID         string
	// Body is the document's JSON object, exactly as stored.
	Body json.RawMessage
	// Rev changes on every write and is never reused, even after a delete
	// and re-create: a strong validator (the origin's ETag).
	Rev       int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Precondition makes a write conditional. The zero value is unconditional.
type Precondition struct {
	// IfRev, when non-zero, requires the document's current Rev to equal it
	// (HTTP If-Match); otherwise ErrPreconditionFailed.
	IfRev int64
	// IfAbsent requires that the document does not exist (HTTP
	// If-None-Match: *); otherwise ErrPreconditionFailed.
	IfAbsent bool
}

// DocumentPage is an answer of List.
type DocumentPage struct {
	Documents []Document // newest (by CreatedAt, then ID) first
	// Next is the cursor of the following page, "" on the last one.
	Next string
	// Partial is true when some shards did not answer in time: Documents
	// then lacks their rows. See Failures.
	Partial  bool
	Failures []ShardFailure
}

// DocumentStore keeps JSON documents of the configured collections on the
// shard of their bucket: reads go through the cache, writes commit on the
// shard and then invalidate, unique fields are enforced across shards.
type DocumentStore struct {
	c    *Cluster
	opts DocumentStoreOptions
	log  *slog.Logger
}

// NewDocumentStore validates opts and makes a DocumentStore over c. The
// shards need the schema of Migrate.
func NewDocumentStore(c *Cluster, opts DocumentStoreOptions) (*DocumentStore, error) {
	log := opts.Logger
	if log == nil {
		log = c.log
	}
	return &DocumentStore{c: c, opts: opts, log: log}, nil
}

// DocumentCacheKey is the cache key of a document.
func DocumentCacheKey(collection, id string) string {
	return "shardedapi:doc:v1:" + collection + ":" + id
}

// Get returns a document, through the cache. ErrNotFound if it does not
// exist; ErrUnknownCollection, ErrInvalidKey for bad names.
func (s *DocumentStore) Get(ctx context.Context, collection, id string) (Document, error) {
	return Document{}, errNotImplemented
}

// Put creates or replaces a document with body (a JSON object), under cond.
// created reports whether it did not exist before. ErrTaken when a unique
// field's value belongs to another document; ErrInvalidValue for a body
// that is not a JSON object or is too large.
func (s *DocumentStore) Put(ctx context.Context, collection, id string, body json.RawMessage, cond Precondition) (doc Document, created bool, err error) {
	return Document{}, false, errNotImplemented
}

// Patch applies a JSON merge patch (RFC 7386) to an existing document,
// under cond, atomically on its shard. ErrNotFound if it does not exist.
func (s *DocumentStore) Patch(ctx context.Context, collection, id string, patch json.RawMessage, cond Precondition) (Document, error) {
	return Document{}, errNotImplemented
}

// Delete removes a document, under cond. ErrNotFound if it does not exist.
func (s *DocumentStore) Delete(ctx context.Context, collection, id string, cond Precondition) error {
	return errNotImplemented
}

// List returns up to limit (1..1000) documents of a collection, newest
// first across every shard (scatter-gather), starting after cursor ("" for
// the first page). A malformed cursor is ErrInvalidValue.
func (s *DocumentStore) List(ctx context.Context, collection string, limit int, cursor string, opts GatherOptions) (DocumentPage, error) {
	return DocumentPage{}, errNotImplemented
}
