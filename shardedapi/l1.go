package shardedapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/redis/go-redis/v9"
)

// l1Tier is the optional in-process tier: a bounded otter cache of decoded
// entries, emptied of a key when an invalidation message for it arrives.
//
// It serves and admits entries only while it is coherent: subscribed to
// the invalidation channel (live) and with Redis answering this process's
// operations (not redisDown, i.e. the circuit breaker is closed). Losing
// either empties the tier at once, since invalidations published meanwhile
// never reach it; it fills again only after a fresh subscription is
// confirmed. During a Redis outage reads therefore go to the loader
// (single-flighted per key in this process): coherence across processes is
// chosen over shielding the database.
//
// epoch makes admission safe against invalidations that race a load: a
// reader notes the epoch before it reads Redis or loads, and its entry is
// admitted only if no invalidation happened since (set re-checks after
// inserting, because an invalidation may land between check and insert).
// All methods accept a nil receiver (no tier).
type l1Tier struct {
	c         *otter.Cache[string, *entry]
	log       *slog.Logger
	ep        atomic.Uint64
	live      atomic.Bool // subscribed: invalidation messages are arriving
	redisDown atomic.Bool // the Redis circuit breaker is not closed
	once      sync.Once
	started   atomic.Bool   // the subscriber goroutine was launched
	mu        sync.Mutex    // orders (re)subscribing against close
	ps        *redis.PubSub // the current subscription, set by the subscriber goroutine
	done      chan struct{} // closed when the subscriber goroutine ends
	stop      chan struct{} // closed by close
	ended     atomic.Bool
	suspends  atomic.Int64 // times the tier was emptied because it lost coherence
}

// l1HealthEvery is how long a quiet subscription waits before it pings
// Redis; a ping unanswered for as long again counts as a lost connection
// (a Redis that hangs rather than closing the socket).
const l1HealthEvery = time.Second

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
	return &l1Tier{c: c, log: log, done: make(chan struct{}), stop: make(chan struct{})}, nil
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
			t.listen(context.WithoutCancel(ctx), rdb, channel)
		}()
	})
}

// subscribe replaces the current subscription with a new one, unless the
// tier is closed.
func (t *l1Tier) subscribe(ctx context.Context, rdb redis.UniversalClient, channel string) *redis.PubSub {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended.Load() {
		return nil
	}
	if t.ps != nil {
		_ = t.ps.Close()
	}
	t.ps = rdb.Subscribe(ctx, channel)
	return t.ps
}

// listen receives invalidations until close. Any error on the
// subscription (the socket closed: Redis died or restarted; or a ping not
// answered in time) suspends the tier and starts a new subscription after
// a short backoff; the tier serves again once Redis confirms it.
func (t *l1Tier) listen(ctx context.Context, rdb redis.UniversalClient, channel string) {
	ps := t.subscribe(ctx, rdb, channel)
	pinged := false
	backoff := 10 * time.Millisecond
	for ps != nil {
		msg, err := ps.ReceiveTimeout(ctx, l1HealthEvery)
		if t.ended.Load() {
			return
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !pinged && t.live.Load() {
				// A quiet channel: make sure the connection still works.
				if ps.Ping(ctx) == nil {
					pinged = true
					continue
				}
			}
			t.suspend("invalidation subscription lost", err)
			select {
			case <-t.stop:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			pinged = false
			ps = t.subscribe(ctx, rdb, channel)
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				// A (re)subscription: messages sent while we were not
				// subscribed are lost, so nothing cached before can be
				// trusted.
				t.clear()
				t.live.Store(true)
				backoff = 10 * time.Millisecond
				t.log.Debug("in-process tier subscribed to invalidations", "channel", m.Channel)
			}
		case *redis.Message:
			t.invalidate(m.Payload)
		case *redis.Pong:
			pinged = false
		}
	}
}

// suspend stops the tier serving and admitting, and empties it, until the
// next confirmed subscription.
func (t *l1Tier) suspend(why string, err error) {
	if t.live.Swap(false) {
		t.suspends.Add(1)
		t.log.Warn("in-process tier suspended until it is subscribed to invalidations again: reads go to Redis or the loader", "why", why, "err", err)
	}
	t.clear()
}

// setRedisDown records the Redis circuit breaker's state: while it is not
// closed, this process cannot be sure it receives invalidations, so the
// tier is emptied and admits nothing. It runs under the breaker's lock.
func (t *l1Tier) setRedisDown(down bool) {
	if t == nil {
		return
	}
	if down {
		t.redisDown.Store(true)
		t.clear()
		return
	}
	t.redisDown.Store(false)
}

// serving reports whether the tier may answer reads and admit entries.
func (t *l1Tier) serving() bool {
	return t.live.Load() && !t.redisDown.Load()
}

func (t *l1Tier) get(key string) (*entry, bool) {
	if !t.serving() {
		return nil, false
	}
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
	if t == nil || !t.serving() || t.ep.Load() != epoch {
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
	close(t.stop)
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
