package shardedapi

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/assetctl/assetctl/internal/testsvc"
)

// cacheWaitL1 reads key through c until the read is answered by the
// in-process tier (the tier admits entries once its subscription is live).
func cacheWaitL1(t *testing.T, c *Cache, key string, load func(context.Context) ([]byte, error)) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		before := cacheCount(c.m.hitL1)
		_, err := c.Get(context.Background(), key, load)
		if err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get %s: %v", key, err)
		}
		if cacheCount(c.m.hitL1) > before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never came from the in-process tier within 10s", key)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// cacheWaitL1Gone waits until key leaves c's in-process tier.
func cacheWaitL1Gone(t *testing.T, c *Cache, key, why string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, ok := c.l1.get(key); !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s stayed in the in-process tier 10s after %s", key, why)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestCacheL1Coherence(t *testing.T) {
	rdb, prefix := testsvc.Redis(t)
	db := newCacheTestDB(t)
	db.put(t, 1, "v1")
	opts := CacheOptions{Prefix: prefix, TTL: time.Hour}
	a := newCacheForTest(t, rdb, withL1(opts, "a"))
	b := newCacheForTest(t, rdb, withL1(opts, "b"))
	ctx := context.Background()
	key := cacheItemKey(1)

	t.Run("value", func(t *testing.T) {
		cacheWaitL1(t, a, key, db.load(1))
		cacheWaitL1(t, b, key, db.load(1))
		redisHits := cacheCount(b.m.hitRedis)
		for range 100 {
			if got, err := b.Get(ctx, key, db.load(1)); err != nil || string(got) != "v1" {
				t.Fatalf("Get = %q, %v; want \"v1\"", got, err)
			}
		}
		if n := cacheCount(b.m.hitRedis) - redisHits; n != 0 {
			t.Errorf("Redis reads for 100 hot reads with an in-process tier: got %d, want 0", n)
		}

		db.put(t, 1, "v2")
		if err := a.Invalidate(ctx, key); err != nil {
			t.Fatal(err)
		}
		// a dropped it at once; b when the message arrives.
		if got, err := a.Get(ctx, key, db.load(1)); err != nil || string(got) != "v2" {
			t.Errorf("writer's Get right after Invalidate = %q, %v; want \"v2\"", got, err)
		}
		cacheWaitL1Gone(t, b, key, "the invalidation")
		if got, err := b.Get(ctx, key, db.load(1)); err != nil || string(got) != "v2" {
			t.Errorf("peer's Get after the invalidation message = %q, %v; want \"v2\"", got, err)
		}
	})

	t.Run("negative", func(t *testing.T) {
		missing := cacheItemKey(2)
		cacheWaitL1(t, a, missing, db.load(2))
		if _, err := a.Get(ctx, missing, db.load(2)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get of a missing row from the in-process tier: got %v, want ErrNotFound", err)
		}
		db.put(t, 2, "created")
		if err := b.Invalidate(ctx, missing); err != nil {
			t.Fatal(err)
		}
		cacheWaitL1Gone(t, a, missing, "the invalidation")
		if got, err := a.Get(ctx, missing, db.load(2)); err != nil || string(got) != "created" {
			t.Errorf("Get after the row was created = %q, %v; want \"created\"", got, err)
		}
	})
}

// TestCacheL1DroppedOnReconnect: invalidation messages sent while the
// subscription is down are lost, so the tier empties itself when it
// resubscribes.
func TestCacheL1DroppedOnReconnect(t *testing.T) {
	srv := testsvc.StartRedis(t)
	c := newCacheForTest(t, srv.Client(t), withL1(CacheOptions{Prefix: "t:", OpTimeout: 100 * time.Millisecond, BreakerOpenFor: 100 * time.Millisecond}, "l1"))
	load := func(context.Context) ([]byte, error) { return []byte("v"), nil }
	cacheWaitL1(t, c, "k", load)
	srv.Kill()
	srv.Start(t)
	cacheWaitL1Gone(t, c, "k", "Redis restarted")
}

func TestCacheL1AdmissionEpoch(t *testing.T) {
	tier, err := newL1Tier(10, time.Hour, cacheTestLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tier.close() })
	tier.live.Store(true)
	e := &entry{payload: []byte("old"), expiry: time.Now().Add(time.Hour).UnixNano()}

	epoch := tier.epoch() // a read begins
	tier.invalidate("k")  // a write's invalidation lands meanwhile
	tier.set("k", e, epoch)
	if _, ok := tier.get("k"); ok {
		t.Errorf("an entry read before an invalidation was admitted after it")
	}
	tier.set("k", e, tier.epoch())
	if _, ok := tier.get("k"); !ok {
		t.Errorf("an entry read after the last invalidation was not admitted")
	}
	// Never past the entry's own TTL.
	short := &entry{payload: []byte("x"), expiry: time.Now().Add(-time.Second).UnixNano()}
	tier.set("short", short, tier.epoch())
	if _, ok := tier.get("short"); ok {
		t.Errorf("an expired entry was served from the in-process tier")
	}
}

func TestCacheEarlyRefresh(t *testing.T) {
	for _, tt := range []struct {
		name  string
		beta  float64
		early bool
	}{{"XFetch on", 10, true}, {"XFetch off", -1, false}} {
		t.Run(tt.name, func(t *testing.T) {
			rdb, prefix := testsvc.Redis(t)
			// With a 60 ms load and Beta 10 a refresh is due from about
			// 600 ms before the expiry: early enough to finish before it
			// even on a busy machine.
			const ttl = time.Second
			c := newCacheForTest(t, rdb, CacheOptions{Prefix: prefix, TTL: ttl, Jitter: -1, Beta: tt.beta})
			ctx := context.Background()
			load := func(context.Context) ([]byte, error) {
				time.Sleep(60 * time.Millisecond)
				return []byte("v"), nil
			}
			if _, err := c.Get(ctx, "hot", load); err != nil {
				t.Fatal(err)
			}
			expiry := time.Unix(0, cacheRawEntry(t, c, "hot").expiry)
			refreshedBeforeExpiry := false
			for time.Now().Before(expiry.Add(200 * time.Millisecond)) {
				if _, err := c.Get(ctx, "hot", load); err != nil {
					t.Fatalf("Get: %v", err)
				}
				e := cacheRawEntry(t, c, "hot")
				if time.Now().Before(expiry) && e != nil && time.Unix(0, e.expiry).After(expiry) {
					refreshedBeforeExpiry = true
				}
				time.Sleep(5 * time.Millisecond)
			}
			if refreshedBeforeExpiry != tt.early {
				t.Errorf("entry replaced before its expiry: got %v, want %v", refreshedBeforeExpiry, tt.early)
			}
			if n := cacheCount(c.m.earlyRefreshes); (n > 0) != tt.early {
				t.Errorf("early refreshes: got %d, want >0 = %v", n, tt.early)
			}
			if n := cacheCount(c.m.missExpired); !tt.early && n == 0 {
				t.Errorf("without XFetch the key should have expired under load: expired misses got 0")
			}
		})
	}
}
