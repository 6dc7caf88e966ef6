package shardedapi

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/assetctl/assetctl/internal/testsvc"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// storeWithCache opens a test dataset whose Store reads through a Cache on
// the machine's Redis (under a unique key prefix).
func storeWithCache(t *testing.T, cfg testClusterConfig, opts CacheOptions) *testCluster {
	t.Helper()
	rdb, prefix := testsvc.Redis(t)
	opts.Prefix = prefix
	opts.Registerer = prometheus.NewRegistry()
	cache, err := NewCache(rdb, opts)
	if err != nil {
		t.Fatalf("NewCache: %v", err)
	}
	t.Cleanup(func() { cache.Close() })
	cfg.Store.Cache = cache
	return newTestCluster(t, cfg)
}

func shardQueries(tc *testCluster, shard string) float64 {
	return testutil.ToFloat64(tc.Cluster.metrics.queries.WithLabelValues(shard, "ok"))
}

func TestStoreReadsThroughCacheAndInvalidatesOnWrite(t *testing.T) {
	t.Parallel()
	tc := storeWithCache(t, testClusterConfig{}, CacheOptions{})
	ctx := context.Background()
	u, err := tc.Store.CreateUser(ctx, NewUser{Email: "cached@example.com", Name: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	shard := mustLocate(t, tc, u.ID)
	before := shardQueries(tc, shard)
	for range 5 {
		if got, err := tc.Store.User(ctx, u.ID); err != nil || got.Name != "v1" {
			t.Fatalf("User: got %+v, %v, want name v1", got, err)
		}
	}
	if q := shardQueries(tc, shard) - before; q != 1 {
		t.Errorf("shard queries for 5 reads through the cache: got %v, want 1", q)
	}
	name := "v2"
	if _, err := tc.Store.UpdateUser(ctx, u.ID, UserChange{Name: &name}); err != nil {
		t.Fatal(err)
	}
	if got, err := tc.Store.User(ctx, u.ID); err != nil || got.Name != "v2" {
		t.Errorf("User after update: got %+v, %v, want name v2 (the write invalidates)", got, err)
	}
	if err := tc.Store.DeleteUser(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.Store.User(ctx, u.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("User after delete: got %v, want ErrNotFound", err)
	}
}

func mustLocate(t *testing.T, tc *testCluster, id ID) string {
	t.Helper()
	loc, err := tc.Cluster.LocateID(id)
	if err != nil {
		t.Fatal(err)
	}
	return loc.Shard.Name()
}

// Concurrent writers and readers through the cache: a read that starts
// after a write committed never returns an older value, i.e. no reader
// ever cached a pre-write value past the write's invalidation.
func TestStoreNoReadOlderThanACommittedWrite(t *testing.T) {
	t.Parallel()
	tc := storeWithCache(t, testClusterConfig{Shards: 2}, CacheOptions{})
	ctx := context.Background()
	const users, writes, readers = 3, 40, 6
	ids := make([]ID, users)
	committed := make([]atomic.Int64, users)
	for i := range ids {
		u, err := tc.Store.CreateUser(ctx, NewUser{Email: fmt.Sprintf("race%d@example.com", i), Name: "0"})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = u.ID
	}
	var wg sync.WaitGroup
	var stop atomic.Bool
	errs := make(chan error, 100)
	for i := range users {
		wg.Go(func() {
			for v := 1; v <= writes; v++ {
				name := strconv.Itoa(v)
				if _, err := tc.Store.UpdateUser(ctx, ids[i], UserChange{Name: &name}); err != nil {
					errs <- err
					return
				}
				committed[i].Store(int64(v))
			}
		})
	}
	var readerWG sync.WaitGroup
	for r := range readers {
		readerWG.Go(func() {
			for n := 0; !stop.Load(); n++ {
				i := (n + r) % users
				floor := committed[i].Load()
				u, err := tc.Store.User(ctx, ids[i])
				if err != nil {
					errs <- err
					return
				}
				if v, _ := strconv.ParseInt(u.Name, 10, 64); v < floor {
					errs <- fmt.Errorf("user %d: read version %d after version %d committed", i, v, floor)
					return
				}
			}
		})
	}
	wg.Wait()
	stop.Store(true)
	readerWG.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, id := range ids {
		if u, err := tc.Store.User(ctx, id); err != nil || u.Name != strconv.Itoa(writes) {
			t.Errorf("user %d at the end: got %q, %v, want %q", i, u.Name, err, strconv.Itoa(writes))
		}
	}
}

// With the cache's serve-stale (the default), users of a stopped shard whose
// entries are cached keep being served (stale once their TTL passed); users
// never cached fail with ErrShardUnavailable; other shards are unaffected.
func TestStoreServesStaleWhileShardIsDown(t *testing.T) {
	t.Parallel()
	tc := storeWithCache(t, testClusterConfig{PrivateShard: true, Layout: Layout{Buckets: 64}},
		CacheOptions{TTL: 200 * time.Millisecond, Jitter: -1, StaleFor: time.Minute, Beta: -1})
	ctx := context.Background()
	const down = "s2"
	var cached, uncached []ID
	for i := 0; len(cached) < 3 || len(uncached) < 3; i++ {
		if i > 200 {
			t.Fatalf("could not place users on %s", down)
		}
		u, err := tc.Store.CreateUser(ctx, NewUser{Email: fmt.Sprintf("stale%d@example.com", i), Name: "n" + strconv.Itoa(i)})
		if err != nil {
			t.Fatal(err)
		}
		if mustLocate(t, tc, u.ID) != down {
			continue
		}
		if len(cached) < 3 {
			if _, err := tc.Store.User(ctx, u.ID); err != nil { // warm the cache
				t.Fatal(err)
			}
			cached = append(cached, u.ID)
		} else {
			uncached = append(uncached, u.ID)
		}
	}
	tc.Private.Stop(t)
	time.Sleep(300 * time.Millisecond) // let the cached entries pass their TTL
	for _, id := range cached {
		if u, err := tc.Store.User(ctx, id); err != nil || u.ID != id {
			t.Errorf("cached user %d on the stopped shard: got %v, want the stale copy", id, err)
		}
	}
	for _, id := range uncached {
		if _, err := tc.Store.User(ctx, id); !errors.Is(err, ErrShardUnavailable) {
			t.Errorf("uncached user %d on the stopped shard: got %v, want ErrShardUnavailable", id, err)
		}
	}
	for i := range 20 {
		email := fmt.Sprintf("alive%d@example.org", i)
		if loc, _ := tc.Cluster.Locate(Key{ID: email}); loc.Shard.Name() == down {
			continue
		}
		if _, err := tc.Store.CreateUser(ctx, NewUser{Email: email}); err != nil {
			t.Errorf("create on a live shard during the outage: got %v, want success", err)
		}
	}
}

// A cached value the Store cannot decode (or that names another user) is
// never served: the Store reads the shard instead.
func TestStoreIgnoresMalformedCachedUsers(t *testing.T) {
	t.Parallel()
	tc := storeWithCache(t, testClusterConfig{Shards: 1}, CacheOptions{})
	ctx := context.Background()
	u, err := tc.Store.CreateUser(ctx, NewUser{Email: "m@example.com", Name: "real"})
	if err != nil {
		t.Fatal(err)
	}
	cache := tc.Store.cache.(*Cache)
	for name, payload := range map[string]string{
		"not json":     "{not json",
		"another user": `{"id":1,"email":"x@example.com","name":"impostor"}`,
	} {
		t.Run(name, func(t *testing.T) {
			cachePutRaw(t, cache, UserCacheKey(u.ID), &entry{payload: []byte(payload), expiry: time.Now().Add(time.Hour).UnixNano()}, time.Hour)
			got, err := tc.Store.User(ctx, u.ID)
			if err != nil || got.Name != "real" {
				t.Errorf("User over a malformed cached value: got %+v, %v, want the shard's row", got, err)
			}
		})
	}
}
