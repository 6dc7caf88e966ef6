package shardedapi

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

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
