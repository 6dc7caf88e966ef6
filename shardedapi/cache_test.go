package shardedapi

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/assetctl/assetctl/internal/testsvc"
)

func TestCacheReadThrough(t *testing.T) {
	rdb, prefix := testsvc.Redis(t)
	db := newCacheTestDB(t)
	db.put(t, 1, "one")
	c := newCacheForTest(t, rdb, CacheOptions{Prefix: prefix, TTL: time.Hour})
	ctx := context.Background()

	before := db.scans(t)
	for i := range 3 {
		got, err := c.Get(ctx, cacheItemKey(1), db.load(1))
		if err != nil || string(got) != "one" {
			t.Fatalf("Get #%d = %q, %v; want \"one\", nil", i, got, err)
		}
	}
	if got := db.scans(t) - before; got != 1 {
		t.Errorf("database queries for 3 reads: got %d, want 1", got)
	}
	if got := cacheCount(c.m.hitRedis); got != 2 {
		t.Errorf("redis hits: got %d, want 2", got)
	}
	if got := cacheCount(c.m.missAbsent); got != 1 {
		t.Errorf("misses: got %d, want 1", got)
	}

	// The caller owns the returned slice.
	got, _ := c.Get(ctx, cacheItemKey(1), db.load(1))
	copy(got, "XXX")
	if again, _ := c.Get(ctx, cacheItemKey(1), db.load(1)); string(again) != "one" {
		t.Errorf("after the caller modified its slice, Get = %q, want \"one\"", again)
	}

	// Delete on write: the next read loads the new row.
	db.put(t, 1, "uno")
	if err := c.Invalidate(ctx, cacheItemKey(1)); err != nil {
		t.Fatalf("Invalidate: %v", err)
	}
	if e := cacheRawEntry(t, c, cacheItemKey(1)); e != nil {
		t.Errorf("after Invalidate the entry is still in Redis: %q", e.payload)
	}
	if got, err := c.Get(ctx, cacheItemKey(1), db.load(1)); err != nil || string(got) != "uno" {
		t.Errorf("Get after write = %q, %v; want \"uno\", nil", got, err)
	}
}

func TestCacheNegative(t *testing.T) {
	rdb, prefix := testsvc.Redis(t)
	db := newCacheTestDB(t)
	const negTTL = 2 * time.Second // long enough for three reads on a busy machine
	c := newCacheForTest(t, rdb, CacheOptions{Prefix: prefix, NegativeTTL: negTTL})
	ctx := context.Background()

	before := db.scans(t)
	for i := range 3 {
		_, err := c.Get(ctx, cacheItemKey(7), db.load(7))
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get #%d of a missing row: got error %v, want ErrNotFound", i, err)
		}
	}
	if got := db.scans(t) - before; got != 1 {
		t.Errorf("database queries for 3 reads of a missing row: got %d, want 1", got)
	}
	e := cacheRawEntry(t, c, cacheItemKey(7))
	if e == nil || !e.negative {
		t.Fatalf("Redis entry of a missing row: got %+v, want a negative entry", e)
	}
	pttl := rdb.PTTL(ctx, c.valueKey(cacheItemKey(7))).Val()
	if pttl <= 0 || pttl > negTTL+negTTL/10 {
		t.Errorf("negative entry's Redis TTL: got %v, want (0, %v] (NegativeTTL plus at most 10%% jitter)", pttl, negTTL+negTTL/10)
	}

	// Once the negative entry expires, the row that appeared meanwhile is found.
	db.put(t, 7, "seven")
	time.Sleep(negTTL + negTTL/10)
	if got, err := c.Get(ctx, cacheItemKey(7), db.load(7)); err != nil || string(got) != "seven" {
		t.Errorf("Get after the negative entry expired = %q, %v; want \"seven\", nil", got, err)
	}
}

func TestCacheTTLJitterSpread(t *testing.T) {
	rdb, prefix := testsvc.Redis(t)
	const ttl, jitter, staleFor = time.Hour, 10 * time.Minute, time.Minute
	c := newCacheForTest(t, rdb, CacheOptions{Prefix: prefix, TTL: ttl, Jitter: jitter, StaleFor: staleFor})
	ctx := context.Background()

	const n = 200
	var lo, hi time.Duration = 1 << 62, 0
	for i := range n {
		key := cacheItemKey(i)
		start := time.Now()
		if _, err := c.Get(ctx, key, func(context.Context) ([]byte, error) { return []byte("v"), nil }); err != nil {
			t.Fatal(err)
		}
		pttl := rdb.PTTL(ctx, c.valueKey(key)).Val()
		if pttl < ttl+staleFor-10*time.Second || pttl > ttl+jitter+staleFor {
			t.Fatalf("Redis TTL of %s: got %v, want within [%v, %v] (TTL+StaleFor plus jitter)", key, pttl, ttl+staleFor, ttl+jitter+staleFor)
		}
		soft := time.Unix(0, cacheRawEntry(t, c, key).expiry).Sub(start)
		if soft < ttl || soft > ttl+jitter+time.Second {
			t.Fatalf("soft TTL of %s: got %v, want within [%v, %v]", key, soft, ttl, ttl+jitter)
		}
		lo, hi = min(lo, pttl), max(hi, pttl)
	}
	// 200 uniform draws over 10 minutes: the spread is below half the jitter
	// with probability about 2^-199.
	if spread := hi - lo; spread < jitter/2 {
		t.Errorf("spread of the TTLs of %d keys stored together: got %v, want at least %v", n, spread, jitter/2)
	}
}

func TestCacheMalformedEntries(t *testing.T) {
	rdb, prefix := testsvc.Redis(t)
	c := newCacheForTest(t, rdb, CacheOptions{Prefix: prefix, ValueVersion: 3})
	ctx := context.Background()
	good := encodeEntry(&entry{payload: []byte("payload"), version: 3, expiry: time.Now().Add(time.Hour).UnixNano()})
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }

	tests := []struct {
		name      string
		raw       []byte
		malformed bool // counted as an error; otherwise a version miss
	}{
		{"empty", []byte{}, true},
		{"garbage", []byte("this is not an entry at all, just text"), true},
		{"truncated header", good[:10], true},
		{"wrong magic", mutate(func(b []byte) []byte { b[0] = 'x'; return b }), true},
		{"future format", mutate(func(b []byte) []byte { b[1] = entryFormat + 1; return b }), true},
		{"unknown flags", mutate(func(b []byte) []byte { b[2] = 0x80; return b }), true},
		{"corrupted payload", mutate(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), true},
		{"truncated payload", good[:len(good)-2], true},
		{"older value version", encodeEntry(&entry{payload: []byte("old format"), version: 2, expiry: time.Now().Add(time.Hour).UnixNano()}), false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := cacheItemKey(i)
			if err := rdb.Set(ctx, c.valueKey(key), tt.raw, time.Hour).Err(); err != nil {
				t.Fatal(err)
			}
			errsBefore, versionBefore := cacheCount(c.m.errMalformed), cacheCount(c.m.missVersion)
			loads := 0
			got, err := c.Get(ctx, key, func(context.Context) ([]byte, error) { loads++; return []byte("fresh"), nil })
			if err != nil || string(got) != "fresh" {
				t.Fatalf("Get = %q, %v; want \"fresh\", nil", got, err)
			}
			if loads != 1 {
				t.Errorf("loads: got %d, want 1", loads)
			}
			if tt.malformed {
				if got := cacheCount(c.m.errMalformed) - errsBefore; got != 1 {
					t.Errorf("malformed-entry errors counted: got %d, want 1", got)
				}
				_, derr := decodeEntry(key, tt.raw)
				var me *MalformedEntryError
				if !errors.As(derr, &me) || !errors.Is(derr, ErrMalformedEntry) || me.Key != key {
					t.Errorf("decode error: got %v, want a *MalformedEntryError for %q", derr, key)
				}
			} else if got := cacheCount(c.m.missVersion) - versionBefore; got != 1 {
				t.Errorf("version misses counted: got %d, want 1", got)
			}
			e := cacheRawEntry(t, c, key)
			if e == nil || string(e.payload) != "fresh" || e.version != 3 {
				t.Errorf("entry after the reload: got %+v, want payload \"fresh\" at version 3", e)
			}
		})
	}
}

func TestCacheEntryTooLarge(t *testing.T) {
	rdb, prefix := testsvc.Redis(t)
	c := newCacheForTest(t, rdb, CacheOptions{Prefix: prefix, MaxValueSize: 1000})
	ctx := context.Background()

	_, err := c.Get(ctx, "big", func(context.Context) ([]byte, error) { return make([]byte, 1001), nil })
	var tl *EntryTooLargeError
	if !errors.As(err, &tl) || !errors.Is(err, ErrEntryTooLarge) {
		t.Fatalf("Get of a 1001-byte value with a 1000-byte limit: got error %v, want *EntryTooLargeError", err)
	}
	if tl.Size != 1001 || tl.Limit != 1000 || tl.Key != "big" {
		t.Errorf("error fields: got %+v, want Key big, Size 1001, Limit 1000", tl)
	}
	if e := cacheRawEntry(t, c, "big"); e != nil {
		t.Errorf("oversized value was stored (%d bytes)", len(e.payload))
	}
	if n := rdb.Exists(ctx, c.lockKey("big")).Val(); n != 0 {
		t.Errorf("lock left behind after the oversized load")
	}
	got, err := c.Get(ctx, "fits", func(context.Context) ([]byte, error) { return make([]byte, 1000), nil })
	if err != nil || len(got) != 1000 {
		t.Errorf("Get of a 1000-byte value = %d bytes, %v; want 1000 bytes, nil", len(got), err)
	}
}

func TestCacheInvalidInput(t *testing.T) {
	rdb, prefix := testsvc.Redis(t)
	c := newCacheForTest(t, rdb, CacheOptions{Prefix: prefix})
	ctx := context.Background()
	load := func(context.Context) ([]byte, error) { t.Error("loader called for an invalid key"); return nil, nil }
	for _, key := range []string{"", "a{b", "tag}", strings.Repeat("k", MaxCacheKeyLen+1)} {
		if _, err := c.Get(ctx, key, load); !errors.Is(err, ErrInvalidCacheKey) {
			t.Errorf("Get(%.20q): got error %v, want ErrInvalidCacheKey", key, err)
		}
		if err := c.Invalidate(ctx, key); !errors.Is(err, ErrInvalidCacheKey) {
			t.Errorf("Invalidate(%.20q): got error %v, want ErrInvalidCacheKey", key, err)
		}
	}

	for _, o := range []CacheOptions{{Prefix: "bad{"}, {TTL: -time.Second}, {MaxValueSize: -1}} {
		if _, err := NewCache(rdb, o); err == nil {
			t.Errorf("NewCache(%+v): got nil error, want one", o)
		}
	}
	if _, err := NewCache(nil, CacheOptions{}); err == nil {
		t.Errorf("NewCache(nil client): got nil error, want one")
	}

	reg := prometheus.NewRegistry()
	newCacheForTest(t, rdb, CacheOptions{Prefix: prefix, Registerer: reg})
	if _, err := NewCache(rdb, CacheOptions{Prefix: prefix, Registerer: reg}); err == nil || !strings.Contains(err.Error(), "CacheOptions.Name") {
		t.Errorf("second cache with the same name on one registry: got error %v, want one naming CacheOptions.Name", err)
	}

	c.Close()
	if _, err := c.Get(ctx, "k", load); !errors.Is(err, ErrCacheClosed) {
		t.Errorf("Get after Close: got %v, want ErrCacheClosed", err)
	}
}

func TestCacheLoaderErrors(t *testing.T) {
	rdb, prefix := testsvc.Redis(t)
	c := newCacheForTest(t, rdb, CacheOptions{Prefix: prefix, TTL: time.Hour})
	ctx := context.Background()
	boom := errors.New("shard down")

	_, err := c.Get(ctx, "k", func(context.Context) ([]byte, error) { return nil, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("Get with a failing loader: got %v, want it to wrap the loader's error", err)
	}
	if e := cacheRawEntry(t, c, "k"); e != nil {
		t.Errorf("a loader error was cached: %+v", e)
	}
	// The lock was released: the next reader loads at once.
	if got, err := c.Get(ctx, "k", func(context.Context) ([]byte, error) { return []byte("v"), nil }); err != nil || string(got) != "v" {
		t.Fatalf("Get after a failed load = %q, %v; want \"v\", nil", got, err)
	}

	// An expired entry still in Redis is served when the loader fails.
	cachePutRaw(t, c, "k", &entry{payload: []byte("stale"), expiry: time.Now().Add(-time.Second).UnixNano()}, time.Minute)
	got, err := c.Get(ctx, "k", func(context.Context) ([]byte, error) { return nil, boom })
	if err != nil || string(got) != "stale" {
		t.Errorf("Get of an expired entry with a failing loader = %q, %v; want \"stale\", nil", got, err)
	}
	if n := cacheCount(c.m.staleServes); n != 1 {
		t.Errorf("stale serves: got %d, want 1", n)
	}

	strict := newCacheForTest(t, rdb, CacheOptions{Prefix: prefix, DisableStaleOnError: true, Name: "strict"})
	if _, err := strict.Get(ctx, "k", func(context.Context) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("with DisableStaleOnError: got %v, want the loader's error", err)
	}
}

// TestCacheStampedeOneProcess is the seed's thundering herd: 5,000
// concurrent reads of a key that has just expired cause exactly one
// database query, counted by PostgreSQL.
func TestCacheStampedeOneProcess(t *testing.T) {
	for _, tt := range []struct {
		name  string
		stale bool // the expired entry is still in Redis (within StaleFor)
	}{{"entry gone", false}, {"entry expired but kept", true}} {
		t.Run(tt.name, func(t *testing.T) {
			rdb, prefix := testsvc.Redis(t)
			db := newCacheTestDB(t)
			db.put(t, 1, "fresh")
			c := newCacheForTest(t, rdb, CacheOptions{Prefix: prefix, TTL: time.Hour})
			key := cacheItemKey(1)
			if tt.stale {
				cachePutRaw(t, c, key, &entry{payload: []byte("old"), expiry: time.Now().Add(-time.Millisecond).UnixNano()}, time.Minute)
			}
			before := db.scans(t)

			const readers = 5000
			var wg sync.WaitGroup
			var bad atomic.Int64
			start := make(chan struct{})
			for range readers {
				wg.Go(func() {
					<-start
					got, err := c.Get(context.Background(), key, db.load(1))
					if err != nil || string(got) != "fresh" {
						bad.Add(1)
					}
				})
			}
			close(start)
			wg.Wait()

			if n := bad.Load(); n != 0 {
				t.Errorf("reads that failed or returned the wrong value: got %d, want 0", n)
			}
			if got := db.scans(t) - before; got != 1 {
				t.Errorf("database queries (server side) for %d concurrent reads: got %d, want 1", readers, got)
			}
			if got := cacheCount(c.m.loadOK); got != 1 {
				t.Errorf("loader calls: got %d, want 1", got)
			}
		})
	}
}

func TestCacheMetricsRegistered(t *testing.T) {
	rdb, prefix := testsvc.Redis(t)
	reg := prometheus.NewRegistry()
	c := newCacheForTest(t, rdb, CacheOptions{Prefix: prefix, Registerer: reg, Name: "users"})
	ctx := context.Background()
	load := func(context.Context) ([]byte, error) { return []byte("v"), nil }
	c.Get(ctx, "k", load)
	c.Get(ctx, "k", load)

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			name := f.GetName()
			for _, l := range m.GetLabel() {
				if l.GetName() != "cache" {
					name += "{" + l.GetName() + "=" + l.GetValue() + "}"
				} else if l.GetValue() != "users" {
					t.Errorf("%s: label cache=%q, want \"users\"", f.GetName(), l.GetValue())
				}
			}
			if m.GetCounter() != nil {
				got[name] = m.GetCounter().GetValue()
			}
		}
	}
	for name, want := range map[string]float64{
		"shardedapi_cache_hits_total{tier=redis}":      1,
		"shardedapi_cache_misses_total{reason=absent}": 1,
		"shardedapi_cache_loads_total{result=ok}":      1,
		"shardedapi_cache_stores_total{result=stored}": 1,
		"shardedapi_cache_coalesced_total":             0,
		"shardedapi_cache_lock_waits_total":            0,
		"shardedapi_cache_early_refreshes_total":       0,
		"shardedapi_cache_stale_serves_total":          0,
		"shardedapi_cache_errors_total{kind=redis}":    0,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s: got %v (registered: %v), want %v", name, v, ok, want)
		}
	}
	c.Close()
	if families, _ := reg.Gather(); len(families) != 0 {
		t.Errorf("metric families left registered after Close: got %d, want 0", len(families))
	}
}
