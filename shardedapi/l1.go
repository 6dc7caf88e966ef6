package shardedapi

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/redis/go-redis/v9"
)

// l1Tier is the optional in-process tier: a bounded otter cache of decoded
// entries, emptied of a key when an invalidation message for it arrives.
//
// epoch makes admission safe against invalidations that race a load: a
// reader notes the epoch before it reads Redis or loads, and its entry is
// admitted only if no invalidation happened since (set re-checks after
// inserting, because an invalidation may land between check and insert).
// All methods accept a nil receiver (no tier).
type l1Tier struct {
	c       *otter.Cache[string, *entry]
	log     *slog.Logger
	ep      atomic.Uint64
	live    atomic.Bool // subscribed: invalidation messages are arriving
	once    sync.Once
	started atomic.Bool   // the subscriber goroutine was launched
	mu      sync.Mutex    // orders subscribing against close
	ps      *redis.PubSub // set by the subscriber goroutine
	done    chan struct{} // closed when the subscriber goroutine ends
	ended   atomic.Bool
}

func newL1Tier(size int, ttl time.Duration, log *slog.Logger) (*l1Tier, error) {
	c, err := otter.New(&otter.Options[string, *entry]{
		MaximumSize: size,
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, *entry]) time.Duration {
			// Never past the entry's own TTL.
			left := time.Until(time.Unix(0, e.Value.expiry))
			return max(min(ttl, left), time.Nanosecond)
		}),
	})
	if err != nil {
		return nil, fmt.Errorf("build in-process tier: %w", err)
	}
	return &l1Tier{c: c, log: log, done: make(chan struct{})}, nil
}

// start subscribes to the invalidation channel on first use, in the
// background so that a Redis that does not answer cannot hold up the read
// that triggers it (entries are admitted once the subscription is live).
// The subscription outlives ctx's cancellation; close ends it.
func (t *l1Tier) start(ctx context.Context, rdb redis.UniversalClient, channel string) {
	t.once.Do(func() {
		t.started.Store(true)
		go func() {
			defer close(t.done)
			t.mu.Lock()
			if t.ended.Load() {
				t.mu.Unlock()
				return
			}
			t.ps = rdb.Subscribe(context.WithoutCancel(ctx), channel)
			ch := t.ps.ChannelWithSubscriptions()
			t.mu.Unlock()
			t.listen(ch)
		}()
	})
}

func (t *l1Tier) listen(ch <-chan any) {
	for msg := range ch {
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				// A (re)subscription: messages sent while we were not
				// subscribed are lost, so nothing cached before can be
				// trusted.
				t.clear()
				t.live.Store(true)
				t.log.Debug("in-process tier subscribed to invalidations", "channel", m.Channel)
			}
		case *redis.Message:
			t.invalidate(m.Payload)
		}
	}
}

func (t *l1Tier) get(key string) (*entry, bool) {
	return t.c.GetIfPresent(key)
}

func (t *l1Tier) epoch() uint64 {
	if t == nil {
		return 0
	}
	return t.ep.Load()
}

// set admits e unless an invalidation happened since epoch was read.
func (t *l1Tier) set(key string, e *entry, epoch uint64) {
	if t == nil || !t.live.Load() || t.ep.Load() != epoch {
		return
	}
	t.c.Set(key, e)
	if t.ep.Load() != epoch {
		t.c.Invalidate(key)
	}
}

func (t *l1Tier) invalidate(key string) {
	if t == nil {
		return
	}
	t.ep.Add(1)
	t.c.Invalidate(key)
}

func (t *l1Tier) clear() {
	t.ep.Add(1)
	t.c.InvalidateAll()
}

func (t *l1Tier) close() error {
	t.mu.Lock()
	t.ended.Store(true)
	ps := t.ps
	t.mu.Unlock()
	var err error
	if ps != nil {
		err = ps.Close()
	}
	if t.started.Load() {
		<-t.done
	}
	t.live.Store(false)
	t.c.StopAllGoroutines()
	return err
}
