package shardedapi

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/assetctl/assetctl/internal/testsvc"
)

// TestCacheRedisCluster runs the cache on a three-master Redis Cluster: the
// Lua scripts touch an entry and its lock together, which works only because
// both keys share a hash tag (one slot); invalidation messages cross nodes.
func TestCacheRedisCluster(t *testing.T) {
	cluster := testsvc.StartRedisCluster(t)
	opts := CacheOptions{Prefix: "t:", TTL: time.Hour}
	a := newCacheForTest(t, cluster.Client(t), withL1(opts, "a"))
	b := newCacheForTest(t, cluster.Client(t), withL1(opts, "b"))
	ctx := context.Background()

	var loads atomic.Int64
	value := "v1"
	var mu sync.Mutex
	load := func(context.Context) ([]byte, error) {
		loads.Add(1)
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		return []byte(value), nil
	}
	// Keys spread over the slots of all three masters.
	for i := range 30 {
		key := "item:" + strconv.Itoa(i)
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				if got, err := a.Get(ctx, key, load); err != nil || string(got) != "v1" {
					t.Errorf("Get %s on the cluster = %q, %v; want \"v1\"", key, got, err)
				}
			})
		}
		wg.Wait()
	}
	if n := loads.Load(); n != 30 {
		t.Errorf("loads for 30 keys read 50 times each at once: got %d, want 30", n)
	}
	if n := cacheCount(a.m.storeOK); n != 30 {
		t.Errorf("entries stored through the lease script: got %d, want 30", n)
	}

	if _, err := a.Get(ctx, "missing", func(context.Context) ([]byte, error) { return nil, ErrNotFound }); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of a missing row on the cluster: got %v, want ErrNotFound", err)
	}

	key := "item:7"
	cacheWaitL1(t, b, key, load)
	mu.Lock()
	value = "v2"
	mu.Unlock()
	if err := a.Invalidate(ctx, key); err != nil {
		t.Fatalf("Invalidate on the cluster: %v", err)
	}
	cacheWaitL1Gone(t, b, key, "an invalidation published on the cluster")
	if got, err := b.Get(ctx, key, load); err != nil || string(got) != "v2" {
		t.Errorf("peer's Get after the invalidation = %q, %v; want \"v2\"", got, err)
	}
	if n := cacheCount(a.m.errRedis) + cacheCount(b.m.errRedis); n != 0 {
		t.Errorf("Redis errors on the cluster (CROSSSLOT would show here): got %d, want 0", n)
	}
}
