package shardedapi

import (
	"bytes"
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/assetctl/assetctl/internal/testsvc"
)

// BenchmarkCacheRedisHit compares a cache hit through Redis (Cache.Get of a
// fresh 512-byte entry, in-process tier off) with a bare go-redis GET of
// the same value, interleaved in the same goroutines so both see the same
// machine load. x-throughput-vs-GET is the bare GET's time over the cache's
// (1.0: no overhead; the target is at least 0.9).
func BenchmarkCacheRedisHit(b *testing.B) {
	for _, ctxTimeouts := range []bool{true, false} {
		b.Run("ContextTimeoutEnabled="+strconv.FormatBool(ctxTimeouts), func(b *testing.B) {
			_, prefix := testsvc.Redis(b)
			rdb := redis.NewClient(&redis.Options{Addr: testsvc.SharedRedisAddr, ContextTimeoutEnabled: ctxTimeouts})
			b.Cleanup(func() { rdb.Close() })
			c := newCacheForTest(b, rdb, CacheOptions{Prefix: prefix, TTL: time.Hour})
			value := bytes.Repeat([]byte("v"), 512)
			load := func(context.Context) ([]byte, error) { return value, nil }
			ctx := context.Background()

			var worker atomic.Int64
			var mu sync.Mutex
			var bareTotal, cacheTotal time.Duration
			var ops int64
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				// Each goroutine has its own keys, so the cache's per-key
				// read coalescing cannot help it.
				w := strconv.FormatInt(worker.Add(1), 10)
				bareKey, key := prefix+"bare:"+w, "bench:"+w
				if err := rdb.Set(ctx, bareKey, value, time.Hour).Err(); err != nil {
					b.Error(err)
					return
				}
				if _, err := c.Get(ctx, key, load); err != nil {
					b.Error(err)
					return
				}
				var bare, cached time.Duration
				var n int64
				for pb.Next() {
					t0 := time.Now()
					v1, err1 := rdb.Get(ctx, bareKey).Bytes()
					t1 := time.Now()
					v2, err2 := c.Get(ctx, key, load)
					t2 := time.Now()
					if err1 != nil || err2 != nil || len(v1) != len(v2) {
						b.Errorf("bare GET: %d bytes, %v; Cache.Get: %d bytes, %v", len(v1), err1, len(v2), err2)
						return
					}
					bare += t1.Sub(t0)
					cached += t2.Sub(t1)
					n++
				}
				mu.Lock()
				bareTotal, cacheTotal, ops = bareTotal+bare, cacheTotal+cached, ops+n
				mu.Unlock()
			})
			if ops == 0 || cacheTotal == 0 {
				return
			}
			if hits := cacheCount(c.m.hitRedis); hits < ops {
				b.Fatalf("Redis hits: got %d, want at least %d (every timed read a hit)", hits, ops)
			}
			b.ReportMetric(float64(bareTotal.Nanoseconds())/float64(ops), "bare-GET-ns/read")
			b.ReportMetric(float64(cacheTotal.Nanoseconds())/float64(ops), "Cache.Get-ns/read")
			b.ReportMetric(float64(bareTotal)/float64(cacheTotal), "x-throughput-vs-GET")
		})
	}
}

// BenchmarkCacheL1Hit measures a read answered by the in-process tier.
func BenchmarkCacheL1Hit(b *testing.B) {
	rdb, prefix := testsvc.Redis(b)
	c := newCacheForTest(b, rdb, CacheOptions{Prefix: prefix, TTL: time.Hour, L1Size: 10000, L1TTL: time.Hour, Registerer: prometheus.NewRegistry()})
	value := bytes.Repeat([]byte("v"), 512)
	load := func(context.Context) ([]byte, error) { return value, nil }
	ctx := context.Background()
	for deadline := time.Now().Add(10 * time.Second); cacheCount(c.m.hitL1) == 0; {
		if _, err := c.Get(ctx, "hot", load); err != nil {
			b.Fatal(err)
		}
		if time.Now().After(deadline) {
			b.Fatal("the in-process tier never answered")
		}
		time.Sleep(time.Millisecond)
	}
	b.Run("serial", func(b *testing.B) {
		before := cacheCount(c.m.hitL1)
		cpu0 := cacheCPUTime(b)
		for b.Loop() {
			if _, err := c.Get(ctx, "hot", load); err != nil {
				b.Fatal(err)
			}
		}
		// CPU time (all threads, GC included) per read: unlike ns/op it
		// does not grow while the process waits for a core on a busy
		// machine.
		b.ReportMetric(float64((cacheCPUTime(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/read")
		if got := cacheCount(c.m.hitL1) - before; got < int64(b.N) {
			b.Fatalf("in-process hits: got %d, want %d", got, b.N)
		}
		// Baseline, same run, as many reads: the bare otter lookup plus
		// the copy Get makes for its caller. The ratio is what the cache
		// adds on top. (testing.Benchmark cannot nest inside a benchmark.)
		var sink []byte
		start := time.Now()
		for range b.N {
			e, _ := c.l1.c.GetIfPresent("hot")
			sink = make([]byte, len(e.payload))
			copy(sink, e.payload)
		}
		bare := float64(time.Since(start).Nanoseconds()) / float64(b.N)
		_ = sink
		b.ReportMetric(bare, "bare-otter-ns/read")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/bare, "x-vs-bare-otter")
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Get(ctx, "hot", load); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// cacheCPUTime is the process's user plus system CPU time so far.
func cacheCPUTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
