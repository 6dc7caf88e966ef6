package shardedapi

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis layout of key k under prefix P: the entry at P{k}:v and its lock
// (the loader's lease) at P{k}:l. The hash tag {k} keeps both in one Cluster
// slot, as the Lua scripts that touch both require. Invalidation messages go
// to the channel P+"invalidations" with k as the payload.
func (c *Cache) valueKey(key string) string { return c.opts.Prefix + "{" + key + "}:v" }
func (c *Cache) lockKey(key string) string  { return c.opts.Prefix + "{" + key + "}:l" }
func (c *Cache) channel() string            { return c.invalidations }

// fillOrLock results.
const (
	lockBusy  = 0 // another loader holds the lock
	lockValue = 1 // an entry exists (returned)
	lockTaken = 2 // we hold the lock
)

// fillOrLockScript returns the entry if there is one, unless its entryID
// is ARGV[3] (the caller saw those bytes and cannot use them), else takes
// the lock.
var fillOrLockScript = redis.NewScript(`
local v = redis.call("GET", KEYS[1])
if v and (ARGV[3] == "" or string.sub(v, 1, 24) .. "#" .. #v ~= ARGV[3]) then return {1, v} end
if redis.call("SET", KEYS[2], ARGV[1], "NX", "PX", ARGV[2]) then return {2} end
return {0}
`)

// storeScript stores the entry only while the caller's lease is intact, so
// an Invalidate that ran during the load (and deleted the lock) wins.
var storeScript = redis.NewScript(`
if redis.call("GET", KEYS[2]) == ARGV[1] then
  redis.call("SET", KEYS[1], ARGV[2], "PX", ARGV[3])
  redis.call("DEL", KEYS[2])
  return 1
end
return 0
`)

// releaseScript deletes the lock only if the caller still holds it.
var releaseScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end
return 0
`)

// invalidateScript deletes the entry and any lease on it, then tells the
// in-process tiers.
var invalidateScript = redis.NewScript(`
redis.call("DEL", KEYS[1], KEYS[2])
redis.call("PUBLISH", ARGV[1], ARGV[2])
return 1
`)

// errRedisUnavailable is returned without a Redis call while the breaker is
// open.
var errRedisUnavailable = errors.New("redis unavailable (circuit breaker open)")

// errOpTimeout is a Redis operation abandoned after OpTimeout by a client
// that does not honour context deadlines. It is a net.Error, so the breaker
// counts it as a failure.
var errOpTimeout error = &opTimeoutError{}

type opTimeoutError struct{}

func (*opTimeoutError) Error() string   { return "redis operation timed out (CacheOptions.OpTimeout)" }
func (*opTimeoutError) Timeout() bool   { return true }
func (*opTimeoutError) Temporary() bool { return true }

// CacheRedisOptions are the go-redis client settings a Cache works best
// with, for the single Redis server at addr:
//
//   - ContextTimeoutEnabled: each operation's OpTimeout deadline reaches
//     the socket, so no goroutine is left behind per slow call;
//   - MaxRetries -1 and DialerRetries 1: go-redis does not retry a failed
//     command or a refused dial within the same call. By default it does
//     (3 command retries, 5 dials 100 ms apart each), so a read in flight
//     when Redis dies spends its whole OpTimeout retrying, and the circuit
//     breaker opens late. The Cache's own policy replaces them: the
//     breaker, the loader fallback and the replay of invalidations;
//   - DialTimeout 1s, ReadTimeout and WriteTimeout 3s: upper bounds for
//     calls without a deadline (the invalidation subscription); Cache
//     operations are bounded by OpTimeout through their context.
//
// For a Sentinel (redis.FailoverOptions) or Cluster (redis.ClusterOptions)
// client set the same fields.
func CacheRedisOptions(addr string) *redis.Options {
	return &redis.Options{
		Addr:                  addr,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
		DialerRetries:         1,
		DialTimeout:           time.Second,
		ReadTimeout:           3 * time.Second,
		WriteTimeout:          3 * time.Second,
	}
}

// clientRetries reports how often rdb retries a command and a dial within
// one call (0 and 1 when it does not; -1, -1 for an unknown client).
func clientRetries(rdb redis.UniversalClient) (retries, dials int) {
	norm := func(r, d int) (int, int) {
		if d <= 0 {
			d = 5 // go-redis's default for a non-positive value
		}
		return max(r, 0), d
	}
	switch r := rdb.(type) {
	case *redis.Client:
		return norm(r.Options().MaxRetries, r.Options().DialerRetries)
	case *redis.ClusterClient:
		return norm(r.Options().MaxRetries, r.Options().DialerRetries)
	case *redis.Ring:
		return norm(r.Options().MaxRetries, r.Options().DialerRetries)
	}
	return -1, -1
}

// honoursDeadlines reports whether rdb applies context deadlines to socket
// I/O (go-redis does only with ContextTimeoutEnabled).
func honoursDeadlines(rdb redis.UniversalClient) bool {
	switch r := rdb.(type) {
	case *redis.Client:
		return r.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return r.Options().ContextTimeoutEnabled
	case *redis.Ring:
		return r.Options().ContextTimeoutEnabled
	}
	return false
}

// redisDo runs one Redis operation under OpTimeout and the circuit breaker.
// redis.Nil is returned as is and counts as success.
func (c *Cache) redisDo(ctx context.Context, op string, fn func(ctx context.Context) error) error {
	done, err := c.br.Allow()
	if err != nil {
		return errRedisUnavailable
	}
	octx, cancel := context.WithTimeout(ctx, c.opts.OpTimeout)
	if c.ctxDeadlines {
		err = fn(octx)
	} else {
		err = abandonAfter(octx, fn)
	}
	cancel()
	done(err)
	if err != nil && !errors.Is(err, redis.Nil) {
		c.m.errRedis.Inc()
		c.log.Debug("redis operation failed", "op", op, "err", err)
	}
	return err
}

// entryID identifies stored bytes cheaply (their header, which holds the
// expiry and payload checksum, and their length), as fillOrLockScript
// computes it.
func entryID(raw []byte) string {
	return string(raw[:min(len(raw), entryHeaderSize)]) + "#" + strconv.Itoa(len(raw))
}

// abandonAfter runs fn but returns when ctx ends, for clients that ignore
// ctx's deadline. fn must not touch the caller's variables after a timeout
// is reported: callers only read what fn wrote when it returns nil.
func abandonAfter(ctx context.Context, fn func(ctx context.Context) error) error {
	ch := make(chan error, 1)
	go func() { ch <- fn(ctx) }()
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return errOpTimeout
		}
		return ctx.Err()
	}
}

func (c *Cache) fillOrLock(ctx context.Context, key, token, seen string) (int, []byte, error) {
	var res []any
	err := c.redisDo(ctx, "lock", func(ctx context.Context) error {
		var err error
		res, err = fillOrLockScript.Run(ctx, c.rdb, []string{c.valueKey(key), c.lockKey(key)},
			token, c.opts.LockTTL.Milliseconds(), seen).Slice()
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	if len(res) == 0 {
		return 0, nil, fmt.Errorf("lock cache key %q: empty script reply", key)
	}
	kind, _ := res[0].(int64)
	switch kind {
	case lockValue:
		if len(res) != 2 {
			return 0, nil, fmt.Errorf("lock cache key %q: script reply of %d elements, want 2", key, len(res))
		}
		s, _ := res[1].(string)
		return lockValue, []byte(s), nil
	case lockTaken, lockBusy:
		return int(kind), nil, nil
	}
	return 0, nil, fmt.Errorf("lock cache key %q: unexpected script reply %v", key, res[0])
}

func (c *Cache) storeEntry(ctx context.Context, key, token string, b []byte, keep time.Duration) (bool, error) {
	var n int64
	err := c.redisDo(ctx, "store", func(ctx context.Context) error {
		var err error
		n, err = storeScript.Run(ctx, c.rdb, []string{c.valueKey(key), c.lockKey(key)},
			token, b, max(keep.Milliseconds(), 1)).Int64()
		return err
	})
	return n == 1, err
}

func (c *Cache) releaseLock(ctx context.Context, key, token string) {
	_ = c.redisDo(ctx, "unlock", func(ctx context.Context) error {
		return releaseScript.Run(ctx, c.rdb, []string{c.lockKey(key)}, token).Err()
	})
}

func (c *Cache) invalidateRedis(ctx context.Context, key string) error {
	return c.redisDo(ctx, "invalidate", func(ctx context.Context) error {
		return invalidateScript.Run(ctx, c.rdb, []string{c.valueKey(key), c.lockKey(key)}, c.channel(), key).Err()
	})
}
