package shardedapi

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// CacheOptions configures a [Cache]. The zero value of every field selects
// its documented default.
type CacheOptions struct {
	// Name labels this cache's metrics (label cache=<Name>) and log lines.
	// Caches sharing a Registerer need distinct names. Default "default".
	Name string

	// Prefix starts every Redis key and the invalidation channel of this
	// cache; caches sharing a Redis need distinct prefixes (processes that
	// share a cache share the prefix). It must not contain '{' or '}'.
	// Default "shardedapi:cache:".
	Prefix string

	// TTL is how long a loaded value is fresh. Default 5 minutes.
	TTL time.Duration

	// Jitter is the upper bound of a random extra added to every TTL, so
	// keys loaded together do not expire together. Default TTL/10; a
	// negative value disables jitter.
	Jitter time.Duration

	// NegativeTTL is how long the absence of a row (the loader returned
	// ErrNotFound) is cached; it gets NegativeTTL/10 of jitter. Default 30
	// seconds.
	NegativeTTL time.Duration

	// StaleFor is how long an entry stays in Redis after its TTL ends. While
	// one loader refreshes such an expired entry, readers in other processes
	// are served it instead of waiting, and readers whose loader fails get
	// it instead of the error (unless DisableStaleOnError). Default 1
	// minute; a negative value keeps no stale copies.
	StaleFor time.Duration

	// DisableStaleOnError makes a loader error reach the caller even when an
	// expired copy is still in Redis. Default false (serve the stale copy,
	// counted in stale_serves_total and logged).
	DisableStaleOnError bool

	// Beta scales probabilistic early expiration (XFetch): a read of a fresh
	// entry starts a background refresh when
	// now - delta*Beta*ln(rand()) >= expiry, where delta is how long the
	// last load took, so hot keys are refreshed before they expire. Larger
	// is earlier. Default 1; a negative value disables early refresh.
	Beta float64

	// LockTTL is how long the per-key Redis lock (a lease, see Invalidate)
	// taken by the one loader across processes lives; a load that takes
	// longer still returns its value but does not store it. Default 5
	// seconds.
	LockTTL time.Duration

	// LockWait is how long a reader waits for another process's loader to
	// store the value before it loads by itself (without storing). Default
	// 1 second.
	LockWait time.Duration

	// LoadTimeout bounds a shared load. The load runs on behalf of every
	// reader of the key, so it is not cancelled when the first reader's
	// context is; each reader still returns when its own context ends.
	// Default 10 seconds.
	LoadTimeout time.Duration

	// OpTimeout bounds each Redis operation. Default 250 milliseconds.
	OpTimeout time.Duration

	// MaxValueSize is the largest value the loader may return, in bytes;
	// a larger one yields *EntryTooLargeError and is not cached. Default 1
	// MiB.
	MaxValueSize int

	// ValueVersion is the version of the caller's value encoding. Entries
	// stored with another version are treated as misses and reloaded, so a
	// change of the value format never misreads old entries: bump it when
	// the format changes. Default 0.
	ValueVersion uint32

	// L1Size enables the in-process tier holding up to L1Size entries,
	// kept coherent across processes by invalidation messages on Redis
	// pub/sub. Default 0: no in-process tier.
	L1Size int

	// L1TTL is how long an entry stays in the in-process tier (never past
	// its Redis TTL). It bounds staleness when an invalidation message is
	// lost. Default 1 second.
	L1TTL time.Duration

	// BreakerFailures is how many consecutive failed Redis operations open
	// the circuit breaker; while it is open, reads go straight to the
	// loader (still single-flighted) without paying OpTimeout. Default 5.
	BreakerFailures uint32

	// BreakerOpenFor is how long the breaker stays open before one probe
	// request tests Redis again; it is also the retry period for pending
	// invalidations. Default 1 second.
	BreakerOpenFor time.Duration

	// MaxPendingInvalidations bounds the queue of invalidations that could
	// not reach Redis; they are replayed when Redis returns. Beyond it,
	// Invalidate returns ErrInvalidationDropped and the TTL bounds the
	// staleness. Default 10000.
	MaxPendingInvalidations int

	// Logger receives the cache's logs. Default: logs are discarded.
	Logger *slog.Logger

	// Registerer receives the cache's Prometheus metrics
	// (shardedapi_cache_*). Default: metrics are kept but not registered.
	Registerer prometheus.Registerer
}

// withDefaults returns o with every zero field replaced by its default and
// negative "disable" values normalized to zero.
func (o CacheOptions) withDefaults() (CacheOptions, error) {
	if o.Name == "" {
		o.Name = "default"
	}
	if o.Prefix == "" {
		o.Prefix = "shardedapi:cache:"
	}
	if strings.ContainsAny(o.Prefix, "{}") {
		return o, fmt.Errorf("cache prefix %q: must not contain '{' or '}' (they form the Redis Cluster hash tag)", o.Prefix)
	}
	if o.TTL == 0 {
		o.TTL = 5 * time.Minute
	}
	if o.Jitter == 0 {
		o.Jitter = o.TTL / 10
	}
	if o.NegativeTTL == 0 {
		o.NegativeTTL = 30 * time.Second
	}
	if o.StaleFor == 0 {
		o.StaleFor = time.Minute
	}
	if o.Beta == 0 {
		o.Beta = 1
	}
	if o.LockTTL == 0 {
		o.LockTTL = 5 * time.Second
	}
	if o.LockWait == 0 {
		o.LockWait = time.Second
	}
	if o.LoadTimeout == 0 {
		o.LoadTimeout = 10 * time.Second
	}
	if o.OpTimeout == 0 {
		o.OpTimeout = 250 * time.Millisecond
	}
	if o.MaxValueSize == 0 {
		o.MaxValueSize = 1 << 20
	}
	if o.L1TTL == 0 {
		o.L1TTL = time.Second
	}
	if o.BreakerFailures == 0 {
		o.BreakerFailures = 5
	}
	if o.BreakerOpenFor == 0 {
		o.BreakerOpenFor = time.Second
	}
	if o.MaxPendingInvalidations == 0 {
		o.MaxPendingInvalidations = 10000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"TTL", o.TTL}, {"NegativeTTL", o.NegativeTTL}, {"LockTTL", o.LockTTL}, {"LockWait", o.LockWait},
		{"LoadTimeout", o.LoadTimeout}, {"OpTimeout", o.OpTimeout}, {"L1TTL", o.L1TTL}, {"BreakerOpenFor", o.BreakerOpenFor}} {
		if d.v < 0 {
			return o, fmt.Errorf("cache option %s is %v: want a positive duration (or 0 for the default)", d.name, d.v)
		}
	}
	if o.MaxValueSize < 0 || o.L1Size < 0 || o.MaxPendingInvalidations < 0 {
		return o, fmt.Errorf("cache options MaxValueSize, L1Size and MaxPendingInvalidations must not be negative")
	}
	o.Jitter = max(o.Jitter, 0)
	o.StaleFor = max(o.StaleFor, 0)
	return o, nil
}
