package shardedapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
	"golang.org/x/sync/singleflight"
)

// MaxCacheKeyLen is the longest key [Cache.Get] and [Cache.Invalidate] accept.
const MaxCacheKeyLen = 512

// Cache is a cache-aside layer over Redis for values loaded from a database:
// reads try Redis (and the optional in-process tier) first and on a miss call
// the loader once per key across concurrent readers; writers commit to the
// database and then call Invalidate. It is safe for concurrent use.
//
// # Reads
//
// Get serves a fresh entry from Redis. On a miss, concurrent readers of the
// key in this process share one load (single-flight); across processes the
// first loader takes a short per-key Redis lock and the others poll Redis for
// its result for up to LockWait (or are served the expired copy when one is
// still there). Every entry is stored with TTL plus random jitter, and kept
// StaleFor longer as a stale copy. A reader of a fresh entry near its expiry
// may start a background refresh (XFetch, see Beta), so a hot key is
// reloaded by one reader before it expires instead of by all readers after.
// A loader returning ErrNotFound has the absence cached for NegativeTTL.
//
// # Writes and the stale-set race
//
// Invalidate deletes the entry; it never writes a value. The lock a loader
// takes is also its lease: the loader stores its result only if it still
// holds the lock, atomically (a Lua script), and Invalidate deletes the lock
// with the entry. A reader that loaded a value before a write committed
// therefore cannot store it after that write's Invalidate: once Invalidate
// returns, no reader can cache a pre-write value (the leases of "Scaling
// Memcache at Facebook").
//
// # When Redis is down
//
// Every Redis operation is bounded by OpTimeout and goes through a circuit
// breaker: after BreakerFailures consecutive failures reads skip Redis and
// call the loader directly (still one load per key in this process) for
// BreakerOpenFor, then one probe tests Redis and the cache resumes by itself.
// A read whose Redis GET failed goes straight to the loader too, so with a
// client built from CacheRedisOptions (no retries inside a call) a read
// during an outage costs one failed Redis attempt, at most OpTimeout.
// Get returns no error because Redis is down. Invalidate still succeeds: the
// key is removed from this process's in-process tier at once and queued
// (up to MaxPendingInvalidations keys); the queue is replayed, deleting the
// Redis entries and publishing the invalidation messages, as soon as Redis
// answers again, and a Get of a queued key replays its invalidation before it
// trusts Redis. What the queue cannot cover, the TTL bounds: keys dropped
// because the queue was full, and the queue of a process that exits before
// Redis returns.
//
// # In-process tier
//
// With L1Size > 0 the hottest entries are also kept in process for L1TTL.
// Invalidate publishes the key on the Redis channel Prefix+"invalidations";
// every Cache with an in-process tier subscribes and drops the key. The tier
// serves and admits entries only while it is coherent: its subscription is
// confirmed and Redis answers this process (the circuit breaker is closed).
// When the subscription's connection fails (a killed or restarted Redis
// closes it at once; a hung one is found by a ping within about two
// seconds) or the breaker opens, the whole tier is dropped and stays empty
// until a new subscription is confirmed. So during a Redis outage the tier
// does not shield the database: reads go to the loader, single-flighted per
// key in this process. That is deliberate: another process's writes cannot
// reach this one while Redis is down, and serving from memory would serve
// their old values. What remains is the moment between Redis dying and this
// process noticing, and a message lost on a live subscription; L1TTL bounds
// both. An entry loaded before an invalidation arrived is never admitted
// after it.
type Cache struct {
	rdb     redis.UniversalClient
	opts    CacheOptions
	log     *slog.Logger
	m       *cacheMetrics
	br      *gobreaker.TwoStepCircuitBreaker[struct{}]
	reads   singleflight.Group // Redis reads, per key
	flights singleflight.Group // loads, per key
	l1      *l1Tier            // nil without an in-process tier
	pending *pendingInvalidations

	ctxDeadlines  bool   // rdb applies ctx deadlines itself (ContextTimeoutEnabled)
	invalidations string // the pub/sub channel: Prefix + "invalidations"

	refreshing sync.Map // key -> struct{}: background refreshes in progress
	closed     atomic.Bool
	stop       chan struct{}
	bgMu       sync.Mutex // orders goBackground against Close
	bgClosed   bool
	bg         sync.WaitGroup
}

// NewCache returns a Cache over rdb (a single node, Sentinel or Cluster
// client). The Cache does not own rdb: Close leaves it open. Build rdb with
// the settings of CacheRedisOptions (for a Sentinel or Cluster client, the
// same fields): ContextTimeoutEnabled so OpTimeout reaches the socket
// (otherwise each Redis call runs on its own goroutine that is abandoned
// after OpTimeout), and no retries inside a call (MaxRetries -1,
// DialerRetries 1), so a read during an outage costs one failed attempt
// rather than several dials until OpTimeout; the circuit breaker is the
// retry policy. NewCache logs which of these rdb lacks.
func NewCache(rdb redis.UniversalClient, opts CacheOptions) (*Cache, error) {
	if rdb == nil {
		return nil, errors.New("new cache: nil Redis client")
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("new cache: %w", err)
	}
	m, err := newCacheMetrics(o.Registerer, o.Name)
	if err != nil {
		return nil, fmt.Errorf("new cache %q: %w", o.Name, err)
	}
	c := &Cache{
		rdb:  rdb,
		opts: o,
		log:  o.Logger.With("cache", o.Name),
		m:    m,
		stop: make(chan struct{}),

		ctxDeadlines:  honoursDeadlines(rdb),
		invalidations: o.Prefix + "invalidations",
	}
	if retries, dials := clientRetries(rdb); retries > 0 || dials > 1 {
		c.log.Info("the Redis client retries within a call (MaxRetries, DialerRetries): during an outage each read waits for the retries, up to OpTimeout; see CacheRedisOptions",
			"max_retries", retries, "dialer_retries", dials)
	}
	if !c.ctxDeadlines {
		c.log.Info("the Redis client ignores context deadlines (ContextTimeoutEnabled is false): OpTimeout is enforced by abandoning slow calls; enable ContextTimeoutEnabled to save a goroutine per call")
	}
	c.pending = newPendingInvalidations(o.MaxPendingInvalidations, m)
	c.br = newRedisBreaker(c)
	if o.L1Size > 0 {
		c.l1, err = newL1Tier(o.L1Size, o.L1TTL, c.log)
		if err != nil {
			m.unregister()
			return nil, fmt.Errorf("new cache %q: %w", o.Name, err)
		}
	}
	return c, nil
}

// Close stops the cache's background work (pending-invalidation replay,
// early refreshes, the invalidation subscription) and unregisters its
// metrics. Invalidations still pending are lost; their keys expire by TTL.
// It does not close the Redis client.
func (c *Cache) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.bgMu.Lock()
	c.bgClosed = true
	c.bgMu.Unlock()
	close(c.stop)
	var err error
	if c.l1 != nil {
		err = c.l1.close()
	}
	c.bg.Wait()
	if n := c.pending.len(); n > 0 {
		c.log.Warn("cache closed with invalidations pending; those keys stay cached until their TTL ends", "pending", n)
	}
	c.m.unregister()
	return err
}

// Get returns the value of key: from the in-process tier or Redis when a
// fresh entry is there, else from load (once per key across concurrent
// callers, see the type's documentation), storing the result.
//
// load receives a context that is not cancelled with ctx (the load serves
// every waiting caller) and ends after LoadTimeout. It returns the value, or
// an error wrapping ErrNotFound for a missing row (cached briefly; Get then
// returns an error wrapping ErrNotFound), or another error (not cached,
// returned to the callers). The cache keeps the returned slice: load must not
// modify it afterwards. Get returns a slice the caller owns.
//
// Get fails only with the loader's error, ErrNotFound, *EntryTooLargeError,
// an ErrInvalidCacheKey error, ErrCacheClosed or ctx's error; Redis failures
// are absorbed (logged and counted).
func (c *Cache) Get(ctx context.Context, key string, load func(ctx context.Context) ([]byte, error)) ([]byte, error) {
	if b, done, err := c.getL1(ctx, key); done {
		return b, err
	}
	return c.getShared(ctx, key, load)
}

// getL1 is Get up to and including the in-process tier: done reports
// that b and err are Get's answer. It is split out so that a caller
// (DocumentStore.Get) can answer an L1 hit without making its load
// closure, which is a heap allocation per read.
func (c *Cache) getL1(ctx context.Context, key string) (b []byte, done bool, err error) {
	if c.closed.Load() {
		return nil, true, ErrCacheClosed
	}
	if err := checkCacheKey(key); err != nil {
		return nil, true, err
	}
	if c.l1 != nil {
		c.l1.start(ctx, c.rdb, c.channel())
		if e, ok := c.l1.get(key); ok {
			c.m.hitL1.Inc()
			b, err := c.result(key, e, true)
			return b, true, err
		}
	}
	return nil, false, nil
}

// getShared is the rest of Get, after getL1 did not answer.
func (c *Cache) getShared(ctx context.Context, key string, load func(ctx context.Context) ([]byte, error)) ([]byte, error) {
	r := c.read(ctx, key, load)
	switch r.state {
	case readFresh:
		c.m.hitRedis.Inc()
		return c.result(key, r.e, r.shared || c.l1 != nil)
	case readAbsent:
		c.m.missAbsent.Inc()
	case readExpired:
		c.m.missExpired.Inc()
	case readMalformed:
		c.m.missMalformed.Inc()
	case readVersion:
		c.m.missVersion.Inc()
	case readFailed, readBreakerOpen:
		c.m.missUnavailable.Inc()
	}
	// A read that just failed does not try Redis again for the lock: an
	// outage read costs at most one Redis operation (one OpTimeout), and the
	// breaker counts one failure per read.
	return c.loadShared(ctx, key, load, r.e, r.seen, r.state == readBreakerOpen || r.state == readFailed)
}

// readState is what the Redis read of a key found.
type readState int

const (
	readFresh       readState = iota // a fresh entry: a hit
	readAbsent                       // no entry
	readExpired                      // an expired entry, kept as the stale copy
	readMalformed                    // bytes that do not decode
	readVersion                      // an entry of another ValueVersion
	readFailed                       // Redis did not answer in time
	readBreakerOpen                  // Redis skipped: the breaker is open
)

type readResult struct {
	state  readState
	e      *entry // fresh or expired entry
	seen   string // entryID of the unusable bytes found, if any
	shared bool   // e went to several callers
}

// read fetches and decodes key's entry. Concurrent reads of one key in this
// process share one Redis round trip, so a hot key costs one GET however
// many callers wait for it (and a herd cannot exhaust the connection pool).
func (c *Cache) read(ctx context.Context, key string, load func(context.Context) ([]byte, error)) readResult {
	v, _, shared := c.reads.Do(key, func() (any, error) {
		epoch := c.l1.epoch()
		if c.pending.has(key) && !c.replayInvalidation(context.WithoutCancel(ctx), key) {
			// Redis may still hold the value this process invalidated.
			return readResult{state: readBreakerOpen}, nil
		}
		var raw []byte
		// Joined callers wait for this GET too: it must not end with the
		// leader's context (OpTimeout bounds it).
		err := c.redisDo(context.WithoutCancel(ctx), "get", func(ctx context.Context) error {
			var err error
			raw, err = c.rdb.Get(ctx, c.valueKey(key)).Bytes()
			return err
		})
		switch {
		case errors.Is(err, redis.Nil):
			return readResult{state: readAbsent}, nil
		case errors.Is(err, errRedisUnavailable):
			return readResult{state: readBreakerOpen}, nil
		case err != nil:
			return readResult{state: readFailed}, nil
		}
		e, err := decodeEntry(key, raw)
		switch {
		case err != nil:
			c.malformed(err)
			return readResult{state: readMalformed, seen: entryID(raw)}, nil
		case e.version != c.opts.ValueVersion:
			return readResult{state: readVersion, seen: entryID(raw)}, nil
		}
		now := time.Now()
		if !e.fresh(now) {
			return readResult{state: readExpired, e: e, seen: entryID(raw)}, nil
		}
		if c.refreshEarly(e, now) {
			c.startRefresh(ctx, key, load, e, entryID(raw))
		}
		c.l1.set(key, e, epoch)
		return readResult{state: readFresh, e: e}, nil
	})
	r := v.(readResult)
	r.shared = shared
	return r
}

// Invalidate deletes key's cached entry; call it after every committed
// write of the row behind key. Once it returns nil, no reader can cache a
// value loaded before the write (see the type's documentation). If Redis is
// unreachable it queues the invalidation and returns nil; it fails only for
// an invalid key, after Close, or with ErrInvalidationDropped when the queue
// is full.
func (c *Cache) Invalidate(ctx context.Context, key string) error {
	if c.closed.Load() {
		return ErrCacheClosed
	}
	if err := checkCacheKey(key); err != nil {
		return err
	}
	seq := c.pending.mark()
	err := c.invalidateRedis(ctx, key)
	// Now that the entry is gone from Redis (or the attempt is over), drop
	// the key from the in-process tier, raising its epoch so reads that
	// began earlier cannot admit their value, and make later readers start
	// their own read and load rather than join ones that began before.
	// Doing this before the Redis call would leave a window in which a read
	// could fetch the old entry and admit it.
	c.l1.invalidate(key)
	c.reads.Forget(key)
	c.flights.Forget(key)
	if err == nil {
		c.pending.remove(key, seq)
		c.m.invApplied.Inc()
		return nil
	} else if c.pending.add(key) {
		c.m.invQueued.Inc()
		if c.pending.len() == 1 {
			c.log.Warn("redis unreachable: queueing invalidations to replay when it returns", "key", key, "err", err)
		} else {
			c.log.Debug("redis unreachable: invalidation queued", "key", key, "err", err)
		}
		c.startReplayer(ctx)
		return nil
	} else {
		c.m.invDropped.Inc()
		c.log.Error("redis unreachable and the invalidation queue is full: the cached value stays until its TTL ends",
			"key", key, "err", err, "queue", c.opts.MaxPendingInvalidations)
		return fmt.Errorf("invalidate cache key %q: %w", key, ErrInvalidationDropped)
	}
}

// loadShared runs fill once per key for all concurrent callers in this
// process and waits for it or for ctx.
func (c *Cache) loadShared(ctx context.Context, key string, load func(context.Context) ([]byte, error), stale *entry, seen string, redisDown bool) ([]byte, error) {
	leader := false
	ch := c.flights.DoChan(key, func() (any, error) {
		leader = true
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.LoadTimeout)
		defer cancel()
		return c.fill(fctx, key, load, stale, seen, redisDown, false)
	})
	select {
	case r := <-ch:
		if !leader {
			c.m.coalesced.Inc()
		}
		if r.Err != nil {
			return nil, r.Err
		}
		return c.result(key, r.Val.(*entry), true)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// fill produces key's entry after a miss: the first process to take the
// key's lock loads and stores; the others wait for its result, serve the
// stale copy, or after LockWait load without storing. With Redis down it
// just loads. refresh marks a background early refresh, which gives up when
// another process is already loading.
func (c *Cache) fill(ctx context.Context, key string, load func(context.Context) ([]byte, error), stale *entry, seen string, redisDown, refresh bool) (*entry, error) {
	epoch := c.l1.epoch()
	if redisDown {
		return c.loadDirect(ctx, key, load, stale, epoch, true)
	}
	token := strconv.FormatUint(rand.Uint64(), 36)
	deadline := time.Now().Add(c.opts.LockWait)
	pause := 2 * time.Millisecond
	waited := false
	for {
		res, raw, err := c.fillOrLock(ctx, key, token, seen)
		if err != nil {
			return c.loadDirect(ctx, key, load, stale, epoch, true)
		}
		switch res {
		case lockValue:
			e, err := decodeEntry(key, raw)
			switch {
			case err != nil:
				c.malformed(err)
			case e.version != c.opts.ValueVersion:
			case e.fresh(time.Now()):
				c.l1.set(key, e, epoch)
				return e, nil
			default:
				stale = e
			}
			// Unusable: take the lock to replace it, unless it changes again.
			seen = entryID(raw)
			continue
		case lockTaken:
			return c.loadAndStore(ctx, key, load, token, stale, epoch)
		}
		// Another process holds the lock and is loading.
		if stale != nil {
			if !refresh {
				c.m.staleServes.Inc()
			}
			return stale, nil
		}
		if !waited {
			waited = true
			c.m.lockWaits.Inc()
		}
		if time.Now().After(deadline) {
			c.m.lockWaitTimeouts.Inc()
			c.log.Warn("waited LockWait for another process's load; loading without storing", "key", key, "lock_wait", c.opts.LockWait)
			return c.loadDirect(ctx, key, load, nil, epoch, false)
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("wait for cache key %q: %w", key, ctx.Err())
		}
		pause = min(2*pause, 50*time.Millisecond)
		seen = ""
	}
}

// loadAndStore loads key while holding its lease (token) and stores the
// entry if the lease survived the load.
func (c *Cache) loadAndStore(ctx context.Context, key string, load func(context.Context) ([]byte, error), token string, stale *entry, epoch uint64) (*entry, error) {
	e, err := c.callLoader(ctx, key, load)
	if err != nil {
		c.releaseLock(ctx, key, token)
		return c.onLoadError(key, err, stale)
	}
	ttl := c.ttl(e)
	keep := ttl
	if !e.negative {
		keep += c.opts.StaleFor
	}
	stored, err := c.storeEntry(ctx, key, token, encodeEntry(e), keep)
	switch {
	case err != nil:
		// Logged and counted by redisDo; the lock expires by itself.
	case stored:
		c.m.storeOK.Inc()
		c.l1.set(key, e, epoch)
	default:
		c.m.storeLeaseLost.Inc()
		c.log.Debug("cache key invalidated during its load; value returned but not stored", "key", key)
	}
	return e, nil
}

// loadDirect loads key without touching Redis (down, or another process's
// load is overdue). The entry may enter the in-process tier only if the
// caller allows it.
func (c *Cache) loadDirect(ctx context.Context, key string, load func(context.Context) ([]byte, error), stale *entry, epoch uint64, admitL1 bool) (*entry, error) {
	e, err := c.callLoader(ctx, key, load)
	if err != nil {
		return c.onLoadError(key, err, stale)
	}
	c.ttl(e)
	if admitL1 {
		c.l1.set(key, e, epoch)
	}
	return e, nil
}

// onLoadError serves the stale copy instead of a loader failure when allowed.
func (c *Cache) onLoadError(key string, err error, stale *entry) (*entry, error) {
	if stale != nil && !c.opts.DisableStaleOnError && !errors.Is(err, ErrEntryTooLarge) {
		c.m.staleServes.Inc()
		c.log.Warn("load failed; serving the expired cached value", "key", key, "err", err)
		return stale, nil
	}
	return nil, err
}

// callLoader runs load and turns its result into an entry (expiry unset).
func (c *Cache) callLoader(ctx context.Context, key string, load func(context.Context) ([]byte, error)) (*entry, error) {
	start := time.Now()
	v, err := load(ctx)
	delta := time.Since(start)
	c.m.loadSeconds.Observe(delta.Seconds())
	switch {
	case errors.Is(err, ErrNotFound):
		c.m.loadNotFound.Inc()
		return &entry{negative: true, version: c.opts.ValueVersion, delta: delta}, nil
	case err != nil:
		c.m.loadError.Inc()
		c.m.errLoad.Inc()
		return nil, fmt.Errorf("load cache key %q: %w", key, err)
	case len(v) > c.opts.MaxValueSize:
		c.m.errTooLarge.Inc()
		err := &EntryTooLargeError{Key: key, Size: len(v), Limit: c.opts.MaxValueSize}
		c.log.Error("loaded value too large to cache", "key", key, "err", err)
		return nil, err
	}
	c.m.loadOK.Inc()
	return &entry{payload: v, version: c.opts.ValueVersion, delta: delta}, nil
}

// ttl sets e's soft expiry to now + TTL (or NegativeTTL) + jitter and
// returns that lifetime.
func (c *Cache) ttl(e *entry) time.Duration {
	ttl, jitter := c.opts.TTL, c.opts.Jitter
	if e.negative {
		ttl, jitter = c.opts.NegativeTTL, c.opts.NegativeTTL/10
	}
	if jitter > 0 {
		ttl += rand.N(jitter)
	}
	e.expiry = time.Now().Add(ttl).UnixNano()
	return ttl
}

// refreshEarly is the XFetch test: refresh when
// now - delta*beta*ln(rand) >= expiry, rand in (0, 1].
func (c *Cache) refreshEarly(e *entry, now time.Time) bool {
	if c.opts.Beta < 0 || e.delta <= 0 {
		return false
	}
	gap := -float64(e.delta) * c.opts.Beta * math.Log(1-rand.Float64())
	return float64(now.UnixNano())+gap >= float64(e.expiry)
}

// startRefresh reloads key in the background unless a refresh of it is
// already running in this process.
func (c *Cache) startRefresh(ctx context.Context, key string, load func(context.Context) ([]byte, error), current *entry, seen string) {
	if _, busy := c.refreshing.LoadOrStore(key, struct{}{}); busy {
		return
	}
	started := c.goBackground(func() {
		defer c.refreshing.Delete(key)
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.LoadTimeout)
		defer cancel()
		if _, err := c.fill(fctx, key, load, current, seen, false, true); err != nil {
			c.log.Warn("early refresh failed", "key", key, "err", err)
		}
	})
	if started {
		c.m.earlyRefreshes.Inc()
	} else {
		c.refreshing.Delete(key)
	}
}

// goBackground runs fn on a goroutine that Close waits for, unless Close
// has begun.
func (c *Cache) goBackground(fn func()) bool {
	c.bgMu.Lock()
	defer c.bgMu.Unlock()
	if c.bgClosed {
		return false
	}
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		fn()
	}()
	return true
}

// result turns an entry into Get's return values, copying the payload when
// the entry is shared.
func (c *Cache) result(key string, e *entry, shared bool) ([]byte, error) {
	if e.negative {
		return nil, fmt.Errorf("cache key %q: %w", key, ErrNotFound)
	}
	if shared {
		b := make([]byte, len(e.payload))
		copy(b, e.payload)
		return b, nil
	}
	return e.payload, nil
}

func (c *Cache) malformed(err error) {
	c.m.errMalformed.Inc()
	c.log.Warn("malformed cache entry treated as a miss", "err", err)
}

func checkCacheKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("cache key is empty: %w", ErrInvalidCacheKey)
	case len(key) > MaxCacheKeyLen:
		return fmt.Errorf("cache key of %d bytes is longer than %d: %w", len(key), MaxCacheKeyLen, ErrInvalidCacheKey)
	case strings.ContainsAny(key, "{}"):
		return fmt.Errorf("cache key %q contains '{' or '}': %w", key, ErrInvalidCacheKey)
	}
	return nil
}
