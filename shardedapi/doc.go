// Package shardedapi, at a glance: a shard key is routed through virtual
// buckets and a versioned bucket → shard map kept in a catalog database to
// one of several PostgreSQL shards, each with its own pool; reads go
// through a cache-aside Redis tier ([Cache]); writes commit on the shard,
// then invalidate.
//
// # Routing: key → bucket → shard
//
// A shard key ([Key]: an ID and an optional region) maps to one of B
// virtual buckets (default [DefaultBuckets], 1024), and each bucket to a
// shard through a versioned bucket → shard map stored in a small catalog
// database, not in code. The key → bucket step never changes for the life
// of a dataset; only bucket → shard moves ([Cluster.MoveBuckets] writes a
// new map version), so adding a shard moves a few buckets, not most rows.
// The seed's three strategies are all available:
//
//   - hash (the default): XXH64 of the key ID modulo the region's bucket
//     count ([HashBucket]), even spread, no hotspots from key order;
//   - range ([StrategyRange], [Layout.Ranges]): ordered key ranges → chosen
//     buckets;
//   - directory ([Cluster.Assign]): an explicit key → bucket entry that
//     overrides the strategy, to give one big tenant its own bucket and
//     later move it alone.
//
// Adding a shard: configure its DSN in every process, [Migrate], then
// [Cluster.AddShard]; [Cluster.PlanRebalance] proposes the fewest moves
// that even out the buckets; [Cluster.MoveBucket] moves each one online
// (snapshot copy, logical replication catch-up, a cutover fenced in the
// source database, cleanup after a grace period), resumably. Every write
// of a sharded row goes through [Cluster.BucketTx], whose fence makes a
// process with a stale map follow a moved bucket instead of writing to
// its old shard. Until the grace period ends the hotspot report counts
// the old copies as Stray.
//
// Regions ([Layout.Regions]) give data residency: each region owns a fixed
// slice of the buckets, spread over its own shards, and a bucket can never
// be moved to another region's shard. A key with Region "eu" lands only on
// EU shards.
//
// Routing does no I/O: [Cluster.Locate] and [Cluster.LocateID] read an
// in-memory snapshot that [Cluster.Refresh] reloads from the catalog (every
// [Options.RefreshInterval]). A map naming a shard without a connection
// string is refused with an [*UnknownShardError], and the previous map
// stays in use.
//
// # Setting up a dataset
//
//	opts := shardedapi.Options{CatalogDSN: catalog, Shards: []shardedapi.ShardConfig{{Name: "s0", DSN: dsn0}, ...}}
//	err := shardedapi.Migrate(ctx, opts)                       // schema on the catalog and every shard, one call
//	err = shardedapi.Bootstrap(ctx, opts, shardedapi.Layout{}) // layout + map version 1, once per dataset
//	cluster, err := shardedapi.Open(ctx, opts)                 // per process
//
// Migrations are goose SQL files embedded in the binary, applied to all
// databases concurrently under an advisory lock (safe from several
// processes). [Open] checks every reachable database and returns a
// [*SchemaLagError] naming the database, its version and the one needed
// when a shard lags. Each shard has its own pgx pool ([Shard.Pool]),
// connecting lazily, so a shard that is down at start fails only its keys.
//
// # Global IDs
//
// An [ID] is the Instagram scheme: 41 bits of milliseconds since [IDEpoch],
// 12 bits of bucket and 10 bits of sequence. Shards mint them in SQL
// (shardedapi_next_id), IDs sort by creation time across shards (to the
// millisecond, and as far as the shard servers' clocks agree: keep them on
// NTP), and the bucket inside an ID routes a row to its shard without any
// lookup. Up to 1024 IDs per millisecond per shard are unique; the ID is
// the primary key, so an overflow fails the insert rather than colliding.
//
// # Cross-shard reads
//
// [Gather] runs a query on every shard concurrently, each under a
// per-shard timeout, and merges the answers. A shard that fails or is slow
// is listed in [Gathered.Failures] and sets [Gathered.Partial]: results are
// never silently truncated. [Store.NewestUsers] is "the newest N" built on
// it.
//
// # Global uniqueness
//
// Sharding breaks UNIQUE constraints ("unique email"). [Cluster.Claim]
// keeps a uniqueness index in the catalog whose primary key serializes
// concurrent claims, so two shards can never accept the same value. Claims
// are taken before the write and confirmed after it commits; released on
// delete or change; and a claim left behind by a crash is verified against
// its owner row (found through the owner's ID) before being taken over.
//
// # Store: the example entity
//
// [Store] keeps users on the shard of their email's bucket. Reads go
// through the cache ([StoreOptions.Cache], an [EntryCache] such as *Cache);
// writes commit on the shard and then invalidate the cache key (never
// update it). A shard that is down fails only the users it owns, with an
// error for which errors.Is(err, [ErrShardUnavailable]) holds and
// errors.As gives the [*ShardError] naming the shard; every other user
// keeps working. With a Cache, users of a down shard whose entries are in
// Redis keep being served, stale once their TTL has passed, for
// CacheOptions.StaleFor (the default; CacheOptions.DisableStaleOnError turns
// it off). Use [Cluster.Locate], [Shard.Pool] and [Shard.Err] the same way
// for your own tables.
//
// # Cache-aside
//
// [Cache] is the Redis tier: read-through on a miss,
// always a TTL with jitter, negative caching, delete-on-write with leases
// (lock tokens) so no reader can cache a pre-write value, single-flight loads,
// a short Redis lock across processes, probabilistic early refresh, an
// optional in-process L1 kept coherent by pub/sub, and a circuit breaker so
// the system keeps serving from the database when Redis is down. See its
// own documentation for the details and the staleness bound.
//
// # Documents
//
// [DocumentStore] is a generic store of JSON documents in configured
// collections, routed by Key{ID: collection + "/" + id} and kept in each
// shard's documents table (with the bucket, so bucket moves and the
// hotspot report find the rows). Every write gets a new revision from
// shardedapi_next_id, never reused even after a delete and re-create, so
// it serves as a strong ETag; [Precondition] makes writes conditional on
// it (If-Match) or on absence (If-None-Match: *), checked under the row
// lock. [DocumentStore.Patch] applies a JSON merge patch (RFC 7386) in the
// same transaction. Unique top-level fields use the catalog claims of
// [Cluster.Claim], owned by the text key "collection/id" (a conflict is a
// [*UniqueFieldError] naming the field, wrapping [ErrTaken]). Reads go
// through the cache as a small binary header and the body bytes, so a hit
// costs no JSON parsing; [DocumentStore.List] is newest first across every
// shard with an opaque keyset cursor.
//
// # Redis key layout
//
// A [Cache] with prefix P (CacheOptions.Prefix, default
// "shardedapi:cache:") writes, for each cache key k:
//
//   - P{k}:v — the entry (a binary header and the value), kept for its
//     TTL plus jitter plus StaleFor;
//   - P{k}:l — the loader's lock and lease, for at most LockTTL;
//
// and publishes invalidations (payload k) on the pub/sub channel
// P+"invalidations". It writes nothing else, never scans or flushes; the
// hash tag {k} keeps a key's entry and lock in one Redis Cluster slot.
// The package's own stores use these cache keys:
//
//   - [UserCacheKey]: shardedapi:user:v1:<id> (a user as JSON);
//   - [DocumentCacheKey]: shardedapi:doc:v1:<collection>:<id> (a document).
//
// So the document products/lamp is at
// "shardedapi:cache:{shardedapi:doc:v1:products:lamp}:v". Caches that share
// a Redis but not their data need distinct prefixes; processes that share
// a cache share its prefix.
//
// # Redis client settings
//
// Build the client a Cache uses with [CacheRedisOptions] (or the same
// settings on a Sentinel or Cluster client): no retries within a call, so
// that a read during an outage costs one failed attempt, bounded by
// OpTimeout, and the breaker opens after BreakerFailures reads.
//
// # Observability
//
// Metrics go to [Options.Registerer]: shardedapi_db_queries_total{shard,
// outcome}, shardedapi_db_query_duration_seconds{shard},
// shardedapi_db_connection_acquires_total{shard, outcome} and
// shardedapi_db_read_retries_total{shard}, plus the cache's own
// (shardedapi_cache_*{cache=<CacheOptions.Name>}, to
// CacheOptions.Registerer). Logs go to the injected [Options.Logger]; the
// package never prints.
//
// Registration follows one rule for both: a registered collector belongs to
// one live owner. A second [Open] on a Registerer that an open Cluster
// uses fails, as does a second [NewCache] with the same Name on one
// Registerer; the error says so. Close unregisters, so a Cluster or Cache
// can be made again after closing the previous one. To run two Clusters in
// one process, give each its own prometheus.Registry or wrap the shared
// one with prometheus.WrapRegistererWithPrefix (a constant label does not
// do: one registry cannot hold a metric name with two label sets); two
// Caches need distinct Names (the cache label tells them apart). [Cluster.Hotspots] is the seed's Hotspot Test: rows, reads and
// writes per bucket and per shard, with the row skew, printable with
// [HotspotReport.WriteText].
//
// # Errors
//
// Callers branch with errors.Is on [ErrNotFound], [ErrInvalidKey],
// [ErrInvalidID], [ErrInvalidValue], [ErrShardUnavailable], [ErrTaken],
// [ErrNotBootstrapped], [ErrUnknownCollection] and [ErrPreconditionFailed],
// and with errors.As on [*ShardError], [*UnknownShardError],
// [*SchemaLagError] and [*UniqueFieldError].
//
// # Restarted shards
//
// Idempotent reads ([Store.User], [Store.NewestUsers], [DocumentStore.Get]
// and [DocumentStore.List]) retry once on a fresh connection when a pooled
// connection turns out dead (the shard's server restarted while it was
// idle); the pool's idle connections are then replaced. Writes are not
// retried: one may have been applied before its connection died.
package shardedapi
