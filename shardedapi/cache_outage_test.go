package shardedapi

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/assetctl/assetctl/internal/testsvc"
)

// cacheLoadTracker wraps row loaders to count calls and record the most
// loads of one row that ever ran at the same time in this process. (An
// Invalidate lets new readers start a new load while one that began before
// it still runs, so the bound is 1 only for rows nobody writes.)
type cacheLoadTracker struct {
	db       *cacheTestDB
	calls    atomic.Int64
	mu       sync.Mutex
	inFlight map[int]int
	maxPer   map[int]int
}

func (lt *cacheLoadTracker) load(id int) func(ctx context.Context) ([]byte, error) {
	return func(ctx context.Context) ([]byte, error) {
		lt.calls.Add(1)
		lt.mu.Lock()
		if lt.inFlight == nil {
			lt.inFlight, lt.maxPer = map[int]int{}, map[int]int{}
		}
		lt.inFlight[id]++
		lt.maxPer[id] = max(lt.maxPer[id], lt.inFlight[id])
		lt.mu.Unlock()
		defer func() {
			lt.mu.Lock()
			lt.inFlight[id]--
			lt.mu.Unlock()
		}()
		v, err := lt.db.load(id)(ctx)
		time.Sleep(2 * time.Millisecond) // a load takes a while: readers overlap
		return v, err
	}
}

// cacheVersions tracks, per row, the newest version whose write committed
// and was invalidated: a read that starts later must return at least it.
type cacheVersions struct{ floor []atomic.Int64 }

func (v *cacheVersions) raise(id int, n int64) {
	for {
		old := v.floor[id].Load()
		if n <= old || v.floor[id].CompareAndSwap(old, n) {
			return
		}
	}
}

// cacheBump commits the next version of row id and returns it.
func cacheBump(ctx context.Context, db *cacheTestDB, id int) (int64, error) {
	var n int64
	err := db.pool.QueryRow(ctx, "UPDATE items SET val = (val::bigint + 1)::text WHERE id = $1 RETURNING val::bigint", id).Scan(&n)
	return n, err
}

// TestCacheRedisKilledUnderLoad kills the cache's Redis while readers and
// writers run, then restarts it: callers see no error and no stale value,
// loads stay single-flighted, the breaker spares most Redis calls, and hits
// resume after the restart.
func TestCacheRedisKilledUnderLoad(t *testing.T) {
	srv := testsvc.StartRedis(t)
	rdb := srv.Client(t)
	db := newCacheTestDB(t)
	const rows, written = 8, 4 // rows [0, written) are written, the rest only read
	for id := range rows {
		db.put(t, id, "0")
	}
	c := newCacheForTest(t, rdb, CacheOptions{
		Prefix: "t:", TTL: time.Hour, OpTimeout: 100 * time.Millisecond, BreakerOpenFor: 200 * time.Millisecond,
	})
	lt := &cacheLoadTracker{db: db}
	vers := &cacheVersions{floor: make([]atomic.Int64, rows)}
	ctx := context.Background()
	scansBefore := db.scans(t)

	var (
		down                       atomic.Bool
		reads, outageReads, writes atomic.Int64
		failures, staleReads       atomic.Int64
		firstFailure               atomic.Value
		stop                       = make(chan struct{})
		wg                         sync.WaitGroup
	)
	fail := func(format string, args ...any) {
		failures.Add(1)
		firstFailure.CompareAndSwap(nil, fmt.Sprintf(format, args...))
	}
	for range 6 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := rand.IntN(rows)
				floor := vers.floor[id].Load()
				wasDown := down.Load()
				got, err := c.Get(ctx, cacheItemKey(id), lt.load(id))
				reads.Add(1)
				if wasDown {
					outageReads.Add(1)
				}
				if err != nil {
					fail("Get row %d: %v", id, err)
					continue
				}
				if n, err := strconv.ParseInt(string(got), 10, 64); err != nil || n < floor {
					staleReads.Add(1)
					firstFailure.CompareAndSwap(nil, fmt.Sprintf("row %d: read %q after version %d was written", id, got, floor))
				}
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
				id := rand.IntN(written)
				n, err := cacheBump(ctx, db, id)
				if err != nil {
					fail("write row %d: %v", id, err)
					continue
				}
				writes.Add(1)
				if err := c.Invalidate(ctx, cacheItemKey(id)); err != nil {
					fail("Invalidate row %d: %v", id, err)
				}
				vers.raise(id, n)
			}
		})
	}

	time.Sleep(500 * time.Millisecond)
	down.Store(true)
	srv.Kill()
	time.Sleep(time.Second)
	redisErrsInOutage := cacheCount(c.m.errRedis)
	srv.Start(t)
	down.Store(false)
	hitsAtRestart := cacheCount(c.m.hitRedis)
	for deadline := time.Now().Add(20 * time.Second); cacheCount(c.m.hitRedis)-hitsAtRestart < 100; {
		if time.Now().After(deadline) {
			close(stop)
			wg.Wait()
			t.Fatalf("Redis hits after the restart: got %d within 20s, want 100 (the cache did not recover)", cacheCount(c.m.hitRedis)-hitsAtRestart)
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()

	if n := failures.Load(); n != 0 {
		t.Errorf("errors returned to callers: got %d, want 0 (first: %v)", n, firstFailure.Load())
	}
	if n := staleReads.Load(); n != 0 {
		t.Errorf("reads older than a committed write: got %d, want 0 (first: %v)", n, firstFailure.Load())
	}
	for id := written; id < rows; id++ {
		if lt.maxPer[id] != 1 {
			t.Errorf("most concurrent loads of row %d (never written): got %d, want 1 (single-flight)", id, lt.maxPer[id])
		}
	}
	// Each write is one indexed UPDATE; everything else the table saw is a load.
	if got, want := db.scans(t)-scansBefore, lt.calls.Load()+writes.Load(); got != want {
		t.Errorf("queries counted by PostgreSQL: got %d, want %d (%d loads + %d writes)", got, want, lt.calls.Load(), writes.Load())
	}
	if outageReads.Load() == 0 || cacheCount(c.m.missUnavailable) == 0 {
		t.Fatalf("no read ran while Redis was down (reads %d, unavailable misses %d): the test did not test the outage",
			outageReads.Load(), cacheCount(c.m.missUnavailable))
	}
	// The breaker: failed Redis calls are a small fraction of the reads made
	// while Redis was down, not one (or more) per read.
	if redisErrsInOutage*5 > outageReads.Load() {
		t.Errorf("Redis errors during the outage: got %d for %d reads, want under a fifth (the breaker should skip Redis)", redisErrsInOutage, outageReads.Load())
	}
	for deadline := time.Now().Add(10 * time.Second); c.pending.len() > 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if n := c.pending.len(); n != 0 {
		t.Errorf("invalidations still pending after the restart: got %d, want 0", n)
	}
	t.Logf("reads %d (%d during the outage), writes %d, loads %d, coalesced %d, redis errors %d, queued invalidations %d, replayed %d",
		reads.Load(), outageReads.Load(), writes.Load(), lt.calls.Load(), cacheCount(c.m.coalesced), redisErrsInOutage,
		cacheCount(c.m.invQueued), cacheCount(c.m.invReplayed))

	// Fully recovered: every row reads its latest version, then hits.
	for id := range rows {
		want := strconv.FormatInt(vers.floor[id].Load(), 10)
		for i := range 2 {
			got, err := c.Get(ctx, cacheItemKey(id), lt.load(id))
			if err != nil || (string(got) != want && vers.floor[id].Load() > 0) {
				t.Errorf("row %d read #%d after recovery = %q, %v; want %q", id, i, got, err, want)
			}
		}
	}
}

// TestCacheInvalidationReplay: an invalidation made while Redis is down is
// replayed when it returns, deleting a value a peer cached meanwhile, and
// reaches the peers' in-process tiers.
func TestCacheInvalidationReplay(t *testing.T) {
	srv := testsvc.StartRedis(t)
	db := newCacheTestDB(t)
	db.put(t, 1, "v1")
	opts := CacheOptions{Prefix: "t:", TTL: time.Hour, OpTimeout: 100 * time.Millisecond, BreakerOpenFor: 100 * time.Millisecond}
	c := newCacheForTest(t, srv.Client(t), opts)
	ctx := context.Background()
	key := cacheItemKey(1)
	if got, err := c.Get(ctx, key, db.load(1)); err != nil || string(got) != "v1" {
		t.Fatalf("Get = %q, %v; want \"v1\"", got, err)
	}

	srv.Kill()
	db.put(t, 1, "v2")
	if err := c.Invalidate(ctx, key); err != nil {
		t.Fatalf("Invalidate with Redis down: got %v, want nil (queued)", err)
	}
	if n := c.pending.len(); n != 1 {
		t.Fatalf("pending invalidations: got %d, want 1", n)
	}
	if got, err := c.Get(ctx, key, db.load(1)); err != nil || string(got) != "v2" {
		t.Errorf("Get with Redis down = %q, %v; want \"v2\" from the loader", got, err)
	}

	// Redis returns, holding the old value (a peer that could still reach
	// it cached it meanwhile).
	srv.Start(t)
	peer := srv.Client(t)
	if err := peer.Set(ctx, c.valueKey(key), encodeEntry(&entry{payload: []byte("v1"), expiry: time.Now().Add(time.Hour).UnixNano()}), time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); c.pending.len() > 0; {
		if time.Now().After(deadline) {
			t.Fatalf("the queued invalidation was not replayed within 10s after Redis returned")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := peer.Exists(ctx, c.valueKey(key)).Val(); n != 0 {
		t.Errorf("the value cached during the outage survived the replayed invalidation")
	}
	if got, err := c.Get(ctx, key, db.load(1)); err != nil || string(got) != "v2" {
		t.Errorf("Get after the replay = %q, %v; want \"v2\"", got, err)
	}
	if n := cacheCount(c.m.invReplayed); n != 1 {
		t.Errorf("replayed invalidations: got %d, want 1", n)
	}
}

// TestCacheBreakerHungRedis: a Redis that accepts connections but never
// answers costs OpTimeout only until the breaker opens; reads still succeed.
func TestCacheBreakerHungRedis(t *testing.T) {
	for _, ctxTimeouts := range []bool{true, false} {
		t.Run("ContextTimeoutEnabled="+strconv.FormatBool(ctxTimeouts), func(t *testing.T) {
			testCacheBreakerHungRedis(t, ctxTimeouts)
		})
	}
}

func testCacheBreakerHungRedis(t *testing.T, ctxTimeouts bool) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held sync.WaitGroup
	hold := make(chan struct{})
	accepting := make(chan struct{})
	t.Cleanup(func() {
		l.Close()
		<-accepting
		close(hold)
		held.Wait()
	})
	go func() {
		defer close(accepting)
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			held.Go(func() { <-hold; conn.Close() }) // never answers
		}
	}()
	rdb := redis.NewClient(&redis.Options{Addr: l.Addr().String(), MaxRetries: -1, Protocol: 2, DisableIdentity: true, ContextTimeoutEnabled: ctxTimeouts})
	t.Cleanup(func() { rdb.Close() })
	c := newCacheForTest(t, rdb, CacheOptions{Prefix: "t:", OpTimeout: 20 * time.Millisecond, BreakerFailures: 3, BreakerOpenFor: time.Hour})
	ctx := context.Background()

	const reads = 50
	for i := range reads {
		got, err := c.Get(ctx, "k", func(context.Context) ([]byte, error) { return []byte("v"), nil })
		if err != nil || string(got) != "v" {
			t.Fatalf("Get #%d with a hung Redis = %q, %v; want \"v\", nil", i, got, err)
		}
	}
	// The first reads pay for up to two Redis calls each (read, then lock)
	// until three failures open the breaker; then no Redis call is made.
	// (Calls that time out while still waiting for a pooled connection on a
	// busy machine do not count towards the three.)
	if n := cacheCount(c.m.errRedis); n < 3 || n > 8 {
		t.Errorf("Redis calls that failed in %d reads: got %d, want 3 to 8 (then the breaker is open)", reads, n)
	}
	if n := cacheCount(c.m.missUnavailable); n != reads {
		t.Errorf("reads served without Redis: got %d, want %d", n, reads)
	}
	if err := c.Invalidate(ctx, "k"); err != nil {
		t.Errorf("Invalidate with a hung Redis: got %v, want nil (queued)", err)
	}
	if !errors.Is(c.redisDo(ctx, "probe", func(context.Context) error { return nil }), errRedisUnavailable) {
		t.Errorf("breaker not open after the failures")
	}
}

func TestCacheInvalidationQueueFull(t *testing.T) {
	// Nothing listens on this port: every Redis call is refused.
	rdb := redis.NewClient(&redis.Options{Addr: testsvc.Addr(testsvc.FreePort(t)), MaxRetries: -1, ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	c := newCacheForTest(t, rdb, CacheOptions{Prefix: "t:", MaxPendingInvalidations: 2})
	ctx := context.Background()
	for _, key := range []string{"a", "b", "a"} {
		if err := c.Invalidate(ctx, key); err != nil {
			t.Fatalf("Invalidate(%s) with room in the queue: got %v, want nil", key, err)
		}
	}
	if err := c.Invalidate(ctx, "c"); !errors.Is(err, ErrInvalidationDropped) {
		t.Errorf("Invalidate with the queue full: got %v, want ErrInvalidationDropped", err)
	}
	if n := c.pending.len(); n != 2 {
		t.Errorf("queued invalidations: got %d, want 2", n)
	}
}

// TestCacheGetReplaysQueuedInvalidation: a Get of a key whose invalidation
// is still queued sends it before trusting what Redis holds.
func TestCacheGetReplaysQueuedInvalidation(t *testing.T) {
	rdb, prefix := testsvc.Redis(t)
	c := newCacheForTest(t, rdb, CacheOptions{Prefix: prefix, TTL: time.Hour})
	ctx := context.Background()
	cachePutRaw(t, c, "k", &entry{payload: []byte("before the write"), expiry: time.Now().Add(time.Hour).UnixNano()}, time.Hour)
	c.pending.add("k") // as if Invalidate had found Redis down

	got, err := c.Get(ctx, "k", func(context.Context) ([]byte, error) { return []byte("after the write"), nil })
	if err != nil || string(got) != "after the write" {
		t.Errorf("Get of a key with a queued invalidation = %q, %v; want \"after the write\"", got, err)
	}
	if n := c.pending.len(); n != 0 {
		t.Errorf("queued invalidations after the Get: got %d, want 0", n)
	}
	if n := cacheCount(c.m.invReplayed); n != 1 {
		t.Errorf("replayed invalidations: got %d, want 1", n)
	}
}
