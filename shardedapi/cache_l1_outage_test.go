package shardedapi

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/assetctl/assetctl/internal/testsvc"
)

// cacheWaitFor polls cond until it holds (failing the test after 10s).
func cacheWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// cacheOutageClient is a client built from CacheRedisOptions for srv.
func cacheOutageClient(t *testing.T, srv *testsvc.RedisServer) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(CacheRedisOptions(srv.Addr))
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// Two processes (two clients and caches, one Redis) with in-process tiers;
// Redis is killed. The tier that loses its subscription empties itself and
// admits nothing while Redis is down, so a write through the other cache is
// never answered with the old value from memory; after Redis returns the
// tiers fill again and stay coherent.
func TestCacheL1SuspendedWhileRedisDown(t *testing.T) {
	srv := testsvc.StartRedis(t)
	db := newCacheTestDB(t)
	db.put(t, 1, "v1")
	opts := CacheOptions{Prefix: "t:", TTL: time.Hour, OpTimeout: 100 * time.Millisecond, BreakerOpenFor: 100 * time.Millisecond}
	writer := newCacheForTest(t, cacheOutageClient(t, srv), withL1(opts, "writer"))
	reader := newCacheForTest(t, cacheOutageClient(t, srv), withL1(opts, "reader"))
	key := cacheItemKey(1)
	lt := &cacheLoadTracker{db: db}
	cacheWaitL1(t, writer, key, lt.load(1))
	cacheWaitL1(t, reader, key, lt.load(1))

	srv.Kill()
	// suspend stops serving first and empties the tier right after: wait
	// for both (a peek between the two is not a served read).
	cacheWaitFor(t, "the reader's tier to notice its subscription is gone and empty itself", func() bool {
		_, held := reader.l1.c.GetIfPresent(key)
		return !reader.l1.serving() && !held
	})
	if reader.l1.suspends.Load() == 0 {
		t.Errorf("the tier was not suspended by the lost subscription")
	}

	db.put(t, 1, "v2")
	if err := writer.Invalidate(context.Background(), key); err != nil {
		t.Fatalf("Invalidate with Redis down: %v", err)
	}
	hitsBefore, loadsBefore := cacheCount(reader.m.hitL1), lt.calls.Load()
	const reads = 5
	for range reads {
		got, err := reader.Get(context.Background(), key, lt.load(1))
		if err != nil || string(got) != "v2" {
			t.Fatalf("read after a write during the outage: got %q, %v, want v2", got, err)
		}
	}
	if n := cacheCount(reader.m.hitL1) - hitsBefore; n != 0 {
		t.Errorf("in-process hits while Redis is down: %d, want 0 (the tier admits nothing while unsubscribed)", n)
	}
	if n := lt.calls.Load() - loadsBefore; n != reads {
		t.Errorf("loads for %d sequential reads while Redis is down: %d, want %d (no in-process tier)", reads, n, reads)
	}

	srv.Start(t)
	// Reads let each breaker probe Redis and close; the tiers then serve
	// again once resubscribed.
	cacheWaitL1(t, reader, key, lt.load(1))
	cacheWaitL1(t, writer, key, lt.load(1))
	db.put(t, 1, "v3")
	if err := writer.Invalidate(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	cacheWaitL1Gone(t, reader, key, "the writer's invalidation after Redis returned")
	if got, err := reader.Get(context.Background(), key, lt.load(1)); err != nil || string(got) != "v3" {
		t.Errorf("read after Redis returned: got %q, %v, want v3", got, err)
	}
}

// An open circuit breaker (Redis failing this process's operations while
// the subscription may look fine) also empties the tier and stops it.
func TestCacheL1SuspendedWhileBreakerOpen(t *testing.T) {
	tier, err := newL1Tier(10, time.Hour, cacheTestLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tier.close() })
	tier.live.Store(true)
	e := &entry{payload: []byte("v"), expiry: time.Now().Add(time.Hour).UnixNano()}
	tier.set("k", e, tier.epoch())
	tier.setRedisDown(true)
	if _, ok := tier.get("k"); ok {
		t.Errorf("entry served with the breaker open")
	}
	tier.set("k2", e, tier.epoch())
	tier.setRedisDown(false)
	if _, ok := tier.get("k"); ok {
		t.Errorf("entry from before the breaker opened served after it closed")
	}
	if _, ok := tier.get("k2"); ok {
		t.Errorf("entry admitted while the breaker was open")
	}
}

// cacheRedisCalls counts what a go-redis client does: commands (one per
// call, whatever its retries) and dial attempts (each retry included).
type cacheRedisCalls struct{ commands, dials atomic.Int64 }

func (h *cacheRedisCalls) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		h.dials.Add(1)
		return next(ctx, network, addr)
	}
}

func (h *cacheRedisCalls) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.commands.Add(1)
		return next(ctx, cmd)
	}
}

func (h *cacheRedisCalls) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A read in flight when Redis dies costs one Redis attempt: one command
// (the GET; no lock attempt after it failed) and at most one dial with the
// client settings of CacheRedisOptions, whether its pooled connection was
// cut under it or it has to dial. The default client settings retry the
// dial within the call instead, which is what made such reads take two
// OpTimeouts.
func TestCacheOutageReadIsOneRedisAttempt(t *testing.T) {
	srv := testsvc.StartRedis(t)
	db := newCacheTestDB(t)
	db.put(t, 1, "v1")
	db.put(t, 2, "v2")
	db.put(t, 3, "v3")
	// A long OpTimeout: the default client's retries then show in full.
	opts := CacheOptions{Prefix: "t:", TTL: time.Hour, OpTimeout: 2 * time.Second, BreakerFailures: 100}

	rdb := cacheOutageClient(t, srv)
	calls := &cacheRedisCalls{}
	rdb.AddHook(calls)
	c := newCacheForTest(t, rdb, withName(opts, "recommended"))
	ctx := context.Background()
	if _, err := c.Get(ctx, cacheItemKey(1), db.load(1)); err != nil { // a pooled connection now
		t.Fatal(err)
	}

	def := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { def.Close() })
	defCalls := &cacheRedisCalls{}
	def.AddHook(defCalls)
	dc := newCacheForTest(t, def, withName(opts, "default"))

	srv.Kill()
	for i, id := range []int{2, 3} {
		calls.commands.Store(0)
		calls.dials.Store(0)
		loads := cacheCount(c.m.loadOK)
		got, err := c.Get(ctx, cacheItemKey(id), db.load(id))
		if err != nil || string(got) != "v"+string(rune('0'+id)) {
			t.Fatalf("outage read %d: got %q, %v", i, got, err)
		}
		if n := calls.commands.Load(); n != 1 {
			t.Errorf("outage read %d: %d Redis commands, want 1 (the GET, nothing after it failed)", i, n)
		}
		if n := calls.dials.Load(); n > 1 {
			t.Errorf("outage read %d: %d dial attempts, want at most 1 (no retries within the call)", i, n)
		}
		if n := cacheCount(c.m.loadOK) - loads; n != 1 {
			t.Errorf("outage read %d: %d loads, want 1", i, n)
		}
	}
	if got, err := dc.Get(ctx, cacheItemKey(2), db.load(2)); err != nil || string(got) != "v2" {
		t.Fatalf("outage read with the default client: got %q, %v", got, err)
	}
	if n := defCalls.dials.Load(); n < 2 {
		t.Errorf("the default client dialled %d times in one outage read; the test expects its retries (>= 2) to show what CacheRedisOptions avoids", n)
	}
	t.Logf("one outage read: %d dial attempt(s) with CacheRedisOptions, %d with go-redis defaults", calls.dials.Load(), defCalls.dials.Load())
}
