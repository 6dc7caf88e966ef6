package shardedapi

import (
	"errors"
	"fmt"
)

// Sentinel errors of the data layer, which callers branch on with
// errors.Is (ErrNotFound, shared with the cache, is in cache_errors.go).
var (
	// ErrInvalidKey means a shard key cannot be routed: empty, too long,
	// not UTF-8, or naming a region the catalog does not know.
	ErrInvalidKey = errors.New("shardedapi: invalid shard key")

	// ErrInvalidID means a global ID is malformed or names a bucket outside
	// the dataset's layout.
	ErrInvalidID = errors.New("shardedapi: invalid id")

	// ErrInvalidValue means a value given to a write is unacceptable
	// (oversized, empty where required, malformed).
	ErrInvalidValue = errors.New("shardedapi: invalid value")

	// ErrShardUnavailable means the shard that owns a key could not be
	// reached (refused, reset, shut down, timed out). Only that shard's keys
	// fail with it; the errors.As target is *ShardError.
	ErrShardUnavailable = errors.New("shardedapi: shard unavailable")

	// ErrTaken means a globally unique value (an email, say) is already
	// claimed by another row, possibly on another shard.
	ErrTaken = errors.New("shardedapi: value already taken")

	// ErrNotBootstrapped means the catalog database has no layout yet: run
	// Migrate and then Bootstrap once for the dataset.
	ErrNotBootstrapped = errors.New("shardedapi: catalog not bootstrapped")
)

// ShardError is an error from one shard. It unwraps to the driver error,
// and errors.Is(err, ErrShardUnavailable) reports whether the shard could
// not be reached at all (as opposed to a query that failed on a live shard).
type ShardError struct {
	Shard       string // shard name, as in the catalog
	Op          string // what was being done, e.g. "get user"
	Unavailable bool   // the shard could not be reached
	Err         error
}

func (e *ShardError) Error() string {
	if e.Unavailable {
		return fmt.Sprintf("%s on shard %q: shard unavailable: %v", e.Op, e.Shard, e.Err)
	}
	return fmt.Sprintf("%s on shard %q: %v", e.Op, e.Shard, e.Err)
}

func (e *ShardError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrShardUnavailable) true for unreachable shards.
func (e *ShardError) Is(target error) bool {
	return target == ErrShardUnavailable && e.Unavailable
}

// UnknownShardError means the catalog's bucket map sends buckets to a shard
// for which Options.Shards has no connection string (or that the catalog's
// shard list does not define). Open refuses such a map, and Refresh keeps
// the previous one.
type UnknownShardError struct {
	Shard      string // the name the map uses
	MapVersion int64  // the bucket map version that uses it
	Buckets    []int  // the buckets mapped to it (ascending)
}

func (e *UnknownShardError) Error() string {
	return fmt.Sprintf("bucket map version %d sends %d bucket(s) (first %d) to shard %q, which has no connection string: add it to Options.Shards or move those buckets",
		e.MapVersion, len(e.Buckets), firstOr(e.Buckets, -1), e.Shard)
}

func firstOr(s []int, def int) int {
	if len(s) == 0 {
		return def
	}
	return s[0]
}

// SchemaLagError means a database's schema is older than the migrations
// compiled into this binary. Run Migrate (it is safe to run repeatedly and
// from several processes at once).
type SchemaLagError struct {
	Database string // "catalog" or the shard name
	Have     int64  // the version applied in the database
	Want     int64  // the newest version this binary knows
}

func (e *SchemaLagError) Error() string {
	return fmt.Sprintf("schema of %s is at version %d, this binary needs %d: run shardedapi.Migrate", e.Database, e.Have, e.Want)
}
