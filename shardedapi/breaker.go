package shardedapi

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
)

// newRedisBreaker builds the circuit breaker every Redis operation of c goes
// through: BreakerFailures consecutive failures open it for BreakerOpenFor,
// then a single probe decides whether it closes again.
func newRedisBreaker(c *Cache) *gobreaker.TwoStepCircuitBreaker[struct{}] {
	return gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "redis",
		MaxRequests: 1,
		Timeout:     c.opts.BreakerOpenFor,
		ReadyToTrip: func(n gobreaker.Counts) bool {
			return n.ConsecutiveFailures >= c.opts.BreakerFailures
		},
		IsSuccessful: redisAnswered,
		IsExcluded: func(err error) bool {
			// A caller that gave up says nothing about Redis, nor does a
			// deadline that passed while waiting for a pooled connection
			// (a busy pool, not a dead server: a server that does not
			// answer fails with a network timeout instead).
			var ne net.Error
			return errors.Is(err, context.Canceled) ||
				(errors.Is(err, context.DeadlineExceeded) && !errors.As(err, &ne))
		},
		OnStateChange: func(_ string, from, to gobreaker.State) {
			// Runs under the breaker's lock: no Redis calls here.
			c.m.breakerState.Set(float64(to))
			switch to {
			case gobreaker.StateOpen:
				c.log.Warn("redis unreachable: circuit breaker open, reads go to the loader", "for", c.opts.BreakerOpenFor)
			case gobreaker.StateClosed:
				c.log.Info("redis reachable again: circuit breaker closed")
				c.pending.wake()
			}
		},
	})
}

// redisAnswered reports whether err (from a Redis operation) shows a live
// server: no error, a nil reply, or an ordinary error reply.
func redisAnswered(err error) bool {
	if err == nil || errors.Is(err, redis.Nil) {
		return true
	}
	var reply redis.Error
	if !errors.As(err, &reply) {
		return false // network error, timeout, closed client
	}
	for _, p := range []string{"LOADING", "CLUSTERDOWN", "MASTERDOWN", "TRYAGAIN", "READONLY"} {
		if redis.HasErrorPrefix(err, p) {
			return false
		}
	}
	return true
}

// pendingInvalidations holds the keys whose invalidation could not reach
// Redis, to replay when it answers again. Each queued key carries the
// sequence number of its latest queueing, so an invalidation that reached
// Redis removes only what was queued before it started.
type pendingInvalidations struct {
	max  int
	m    *cacheMetrics
	n    atomic.Int64 // len(keys), read without the lock on every Get
	mu   sync.Mutex
	seq  uint64
	keys map[string]uint64
	kick chan struct{}
	once sync.Once
}

func newPendingInvalidations(max int, m *cacheMetrics) *pendingInvalidations {
	return &pendingInvalidations{max: max, m: m, keys: map[string]uint64{}, kick: make(chan struct{}, 1)}
}

func (p *pendingInvalidations) has(key string) bool {
	if p.n.Load() == 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.keys[key]
	return ok
}

// mark returns the sequence number to pass to remove after a successful
// invalidation that starts now.
func (p *pendingInvalidations) mark() uint64 {
	if p.n.Load() == 0 {
		return 0 // nothing queued: anything queued later must stay
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seq
}

// add queues key and reports whether it is queued (false: the queue is full).
func (p *pendingInvalidations) add(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.keys[key]; !ok && len(p.keys) >= p.max {
		return false
	}
	p.seq++
	p.keys[key] = p.seq
	p.updated()
	return true
}

// remove drops key if it was last queued at or before seq (see mark) and
// reports whether it did.
func (p *pendingInvalidations) remove(key string, seq uint64) bool {
	if p.n.Load() == 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.keys[key]; !ok || s > seq {
		return false
	}
	delete(p.keys, key)
	p.updated()
	return true
}

func (p *pendingInvalidations) updated() {
	p.n.Store(int64(len(p.keys)))
	p.m.pendingInvalidations.Set(float64(len(p.keys)))
}

func (p *pendingInvalidations) len() int { return int(p.n.Load()) }

// snapshot returns up to n queued keys.
func (p *pendingInvalidations) snapshot(n int) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	keys := make([]string, 0, min(n, len(p.keys)))
	for k := range p.keys {
		if len(keys) == n {
			break
		}
		keys = append(keys, k)
	}
	return keys
}

// wake asks the replayer to try now.
func (p *pendingInvalidations) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// startReplayer starts, once, the goroutine that replays queued
// invalidations every BreakerOpenFor (and when the breaker closes) until
// Close. Its Redis calls carry ctx's values but not its cancellation.
func (c *Cache) startReplayer(ctx context.Context) {
	c.pending.once.Do(func() {
		ctx := context.WithoutCancel(ctx)
		c.goBackground(func() {
			t := time.NewTicker(c.opts.BreakerOpenFor)
			defer t.Stop()
			for {
				select {
				case <-c.stop:
					return
				case <-t.C:
				case <-c.pending.kick:
				}
				c.replayPending(ctx)
			}
		})
	})
}

// replayPending sends queued invalidations until the queue is empty or
// Redis fails again.
func (c *Cache) replayPending(ctx context.Context) {
	for c.pending.len() > 0 {
		keys := c.pending.snapshot(256)
		for _, k := range keys {
			select {
			case <-c.stop:
				return
			default:
			}
			if !c.replayInvalidation(ctx, k) {
				return
			}
		}
	}
}

// replayInvalidation sends key's queued invalidation and reports whether
// Redis took it.
func (c *Cache) replayInvalidation(ctx context.Context, key string) bool {
	seq := c.pending.mark()
	if err := c.invalidateRedis(ctx, key); err != nil {
		return false
	}
	if c.pending.remove(key, seq) {
		c.m.invReplayed.Inc()
		c.log.Debug("queued invalidation replayed", "key", key)
		if c.pending.len() == 0 {
			c.log.Info("all queued invalidations replayed")
		}
	}
	return true
}
