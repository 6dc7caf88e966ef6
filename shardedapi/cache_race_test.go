package shardedapi

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/assetctl/assetctl/internal/testsvc"
)

// TestCacheNoStaleSetAfterWrite runs writers and readers of two hot rows
// through three caches sharing Redis (as three processes would), with loads
// slowed after they read the row so that many of them straddle a write.
// After a write commits and Invalidate returns, Redis must never again hold
// an older value (a monitor checks continuously), the writing cache's own
// readers never see one, and at the end every cache serves the last value.
func TestCacheNoStaleSetAfterWrite(t *testing.T) {
	rdb, prefix := testsvc.Redis(t)
	db := newCacheTestDB(t)
	const rows, writesPerRow = 2, 300
	for id := range rows {
		db.put(t, id, "0")
	}
	opts := CacheOptions{Prefix: prefix, TTL: time.Hour, LockWait: 50 * time.Millisecond}
	writer := newCacheForTest(t, rdb, withL1(opts, "writer"))
	peers := []*Cache{writer,
		newCacheForTest(t, rdb, withName(opts, "peer1")),
		newCacheForTest(t, rdb, withName(opts, "peer2")),
	}
	vers := &cacheVersions{floor: make([]atomic.Int64, rows)}
	slowLoad := func(id int) func(ctx context.Context) ([]byte, error) {
		return func(ctx context.Context) ([]byte, error) {
			v, err := db.load(id)(ctx)
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
			return v, err
		}
	}
	ctx := context.Background()

	var (
		problems   atomic.Int64
		first      atomic.Value
		reads      atomic.Int64
		stop       = make(chan struct{})
		readersWG  sync.WaitGroup
		writersWG  sync.WaitGroup
		monitorsWG sync.WaitGroup
	)
	problem := func(format string, args ...any) {
		problems.Add(1)
		first.CompareAndSwap(nil, fmt.Sprintf(format, args...))
	}
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	for i, c := range peers {
		for range 4 {
			readersWG.Go(func() {
				for !stopped() {
					id := rand.IntN(rows)
					floor := vers.floor[id].Load()
					got, err := c.Get(ctx, cacheItemKey(id), slowLoad(id))
					reads.Add(1)
					if err != nil {
						problem("cache %d: Get row %d: %v", i, id, err)
						continue
					}
					n, _ := strconv.ParseInt(string(got), 10, 64)
					// Only the writing process is bound to see its own writes
					// at once; the others may join a Redis read that began
					// just before the write.
					if c == writer && n < floor {
						problem("writer's cache: row %d read %d after version %d was written", id, n, floor)
					}
				}
			})
		}
	}
	for id := range rows {
		monitorsWG.Go(func() {
			for !stopped() {
				floor := vers.floor[id].Load()
				b, err := rdb.Get(ctx, writer.valueKey(cacheItemKey(id))).Bytes()
				if errors.Is(err, redis.Nil) {
					continue
				}
				if err != nil {
					problem("monitor: %v", err)
					return
				}
				e, err := decodeEntry(cacheItemKey(id), b)
				if err != nil {
					problem("monitor: %v", err)
					continue
				}
				if n, _ := strconv.ParseInt(string(e.payload), 10, 64); n < floor {
					problem("row %d: Redis holds version %d after version %d was written and invalidated", id, n, floor)
				}
			}
		})
		writersWG.Go(func() {
			for range writesPerRow {
				n, err := cacheBump(ctx, db, id)
				if err != nil {
					problem("write row %d: %v", id, err)
					return
				}
				if err := writer.Invalidate(ctx, cacheItemKey(id)); err != nil {
					problem("Invalidate row %d: %v", id, err)
				}
				vers.raise(id, n)
				time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
			}
		})
	}
	writersWG.Wait()
	close(stop)
	readersWG.Wait()
	monitorsWG.Wait()

	if n := problems.Load(); n != 0 {
		t.Errorf("stale values or errors: got %d, want 0; first: %v", n, first.Load())
	}
	var leaseLost int64
	for _, c := range peers {
		leaseLost += cacheCount(c.m.storeLeaseLost)
	}
	t.Logf("%d writes, %d reads, %d stores refused because a write invalidated the load", rows*writesPerRow, reads.Load(), leaseLost)
	for id := range rows {
		want := strconv.Itoa(writesPerRow)
		if e := cacheRawEntry(t, writer, cacheItemKey(id)); e != nil && string(e.payload) != want {
			t.Errorf("row %d: Redis holds %q after the last write, want %q or nothing", id, e.payload, want)
		}
		for i, c := range peers {
			if got, err := c.Get(ctx, cacheItemKey(id), db.load(id)); err != nil || string(got) != want {
				t.Errorf("cache %d: row %d after the last write = %q, %v; want %q", i, id, got, err, want)
			}
		}
	}
}

func withName(o CacheOptions, name string) CacheOptions {
	o.Name = name
	return o
}

func withL1(o CacheOptions, name string) CacheOptions {
	o.Name, o.L1Size, o.L1TTL = name, 100, time.Hour
	return o
}
