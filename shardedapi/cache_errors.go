package shardedapi

import (
	"errors"
	"fmt"
)

// ErrNotFound is returned when the requested row does not exist. A loader
// passed to [Cache.Get] returns it (or an error wrapping it) to have the
// absence cached briefly (negative caching); Get then returns an error that
// wraps it.
var ErrNotFound = errors.New("shardedapi: not found")

// ErrInvalidCacheKey is wrapped by the error [Cache.Get] and
// [Cache.Invalidate] return for a key they cannot store: empty, longer than
// [MaxCacheKeyLen] bytes, or containing '{' or '}' (reserved for the Redis
// Cluster hash tag that keeps a key's entry and lock in one slot).
var ErrInvalidCacheKey = errors.New("shardedapi: invalid cache key")

// ErrEntryTooLarge is wrapped by [*EntryTooLargeError].
var ErrEntryTooLarge = errors.New("shardedapi: cache entry too large")

// ErrMalformedEntry is wrapped by [*MalformedEntryError].
var ErrMalformedEntry = errors.New("shardedapi: malformed cache entry")

// ErrCacheClosed is returned by [Cache] methods called after [Cache.Close].
var ErrCacheClosed = errors.New("shardedapi: cache closed")

// ErrInvalidationDropped is returned by [Cache.Invalidate] when Redis is
// unreachable and the queue of pending invalidations is full: the write has
// committed, but the cached copy stays until its TTL ends. Log it; do not fail
// the write.
var ErrInvalidationDropped = errors.New("shardedapi: invalidation dropped")

// EntryTooLargeError reports a loaded value larger than
// CacheOptions.MaxValueSize. The value is neither cached nor returned.
type EntryTooLargeError struct {
	Key   string
	Size  int
	Limit int
}

func (e *EntryTooLargeError) Error() string {
	return fmt.Sprintf("cache key %q: value of %d bytes exceeds the %d-byte limit (CacheOptions.MaxValueSize): store large values elsewhere or raise the limit", e.Key, e.Size, e.Limit)
}

// Unwrap makes errors.Is(err, ErrEntryTooLarge) true.
func (e *EntryTooLargeError) Unwrap() error { return ErrEntryTooLarge }

// MalformedEntryError reports cached bytes that do not decode as an entry
// (truncated, corrupted, or written by an unknown format version). The cache
// logs and counts it, treats the entry as a miss and overwrites it; callers
// of Get never see it.
type MalformedEntryError struct {
	Key    string
	Reason string
}

func (e *MalformedEntryError) Error() string {
	return fmt.Sprintf("cache key %q: malformed entry: %s", e.Key, e.Reason)
}

// Unwrap makes errors.Is(err, ErrMalformedEntry) true.
func (e *MalformedEntryError) Unwrap() error { return ErrMalformedEntry }
