package shardedapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
)

// cacheTestPostgres is the machine's PostgreSQL server.
const cacheTestPostgres = "postgres://postgres@127.0.0.1:5432/%s?sslmode=disable"

// cacheTestDB is a uniquely named database holding one tiny table,
// items(id int primary key, val text), that the cache tests load from. It
// counts the queries on the table on the server side (pg_stat_user_tables).
type cacheTestDB struct {
	name  string
	dsn   string
	pool  *pgxpool.Pool // the loaders' connections
	stats *pgx.Conn     // reads the statistics
}

func newCacheTestDB(t testing.TB) *cacheTestDB {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, fmt.Sprintf(cacheTestPostgres, "postgres"))
	if err != nil {
		t.Fatalf("connect to PostgreSQL at 127.0.0.1:5432 as postgres (%v): install it with `apt-get install -y postgresql` and allow trust auth for 127.0.0.1", err)
	}
	defer admin.Close(ctx)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	d := &cacheTestDB{name: "cache_test_" + hex.EncodeToString(b)}
	d.dsn = fmt.Sprintf(cacheTestPostgres, d.name)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+d.name); err != nil {
		t.Fatalf("create database %s: %v", d.name, err)
	}
	t.Cleanup(func() {
		if d.pool != nil {
			d.pool.Close()
		}
		if d.stats != nil {
			d.stats.Close(ctx)
		}
		admin, err := pgx.Connect(ctx, fmt.Sprintf(cacheTestPostgres, "postgres"))
		if err != nil {
			t.Errorf("drop database %s: %v", d.name, err)
			return
		}
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+d.name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", d.name, err)
		}
	})
	cfg, err := pgxpool.ParseConfig(d.dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 8
	if d.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		t.Fatalf("open pool on %s: %v", d.name, err)
	}
	if d.stats, err = pgx.Connect(ctx, d.dsn); err != nil {
		t.Fatalf("connect to %s: %v", d.name, err)
	}
	if _, err := d.stats.Exec(ctx, "CREATE TABLE items (id int PRIMARY KEY, val text NOT NULL)"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	return d
}

// put inserts or replaces row id.
func (d *cacheTestDB) put(t testing.TB, id int, val string) {
	t.Helper()
	_, err := d.stats.Exec(context.Background(),
		"INSERT INTO items (id, val) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET val = excluded.val", id, val)
	if err != nil {
		t.Fatalf("put row %d: %v", id, err)
	}
}

// load is the loader of row id: one indexed query.
func (d *cacheTestDB) load(id int) func(ctx context.Context) ([]byte, error) {
	return cacheTestLoader(d.pool, id)
}

func cacheTestLoader(pool *pgxpool.Pool, id int) func(ctx context.Context) ([]byte, error) {
	return func(ctx context.Context) ([]byte, error) {
		var v string
		err := pool.QueryRow(ctx, "SELECT val FROM items WHERE id = $1", id).Scan(&v)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, ErrNotFound
		}
		if err != nil {
			return nil, err
		}
		return []byte(v), nil
	}
}

// cacheTestFlushStats makes every idle connection of pool send its pending
// table statistics to the server now (they are otherwise sent at most once
// a second, or later when a backend is idle).
func cacheTestFlushStats(t testing.TB, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	for _, c := range pool.AcquireAllIdle(ctx) {
		// The flush happens when the backend goes idle after this
		// statement, before it answers.
		if _, err := c.Exec(ctx, "SELECT pg_stat_force_next_flush()"); err != nil {
			t.Fatalf("flush statistics: %v", err)
		}
		c.Release()
	}
}

// scans is the number of scans (queries) of items counted by the server:
// seq_scan + idx_scan from pg_stat_user_tables, after flushing the loaders'
// pending statistics.
func (d *cacheTestDB) scans(t testing.TB) int64 {
	t.Helper()
	cacheTestFlushStats(t, d.pool)
	return cacheTestScans(t, d.stats)
}

func cacheTestScans(t testing.TB, conn *pgx.Conn) int64 {
	t.Helper()
	ctx := context.Background()
	// This connection's own writes (test setup) count too: flush them.
	if _, err := conn.Exec(ctx, "SELECT pg_stat_force_next_flush()"); err != nil {
		t.Fatalf("flush statistics: %v", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_stat_clear_snapshot()"); err != nil {
		t.Fatalf("clear statistics snapshot: %v", err)
	}
	var n int64
	err := conn.QueryRow(ctx,
		"SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE relname = 'items'").Scan(&n)
	if err != nil {
		t.Fatalf("read scan statistics: %v", err)
	}
	return n
}

// newTestCache builds a Cache on rdb with a fresh registry and a test
// logger; opts.Prefix must be set.
func newCacheForTest(t testing.TB, rdb redis.UniversalClient, opts CacheOptions) *Cache {
	t.Helper()
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.Logger == nil {
		opts.Logger = cacheTestLogger(t)
	}
	c, err := NewCache(rdb, opts)
	if err != nil {
		t.Fatalf("NewCache: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func cacheCount(c prometheus.Collector) int64 { return int64(testutil.ToFloat64(c)) }

// putRawEntry writes an entry to Redis as a loader would have.
func cachePutRaw(t testing.TB, c *Cache, key string, e *entry, keep time.Duration) {
	t.Helper()
	if err := c.rdb.Set(context.Background(), c.valueKey(key), encodeEntry(e), keep).Err(); err != nil {
		t.Fatalf("write entry %q: %v", key, err)
	}
}

// rawEntry reads and decodes key's entry from Redis (nil if absent).
func cacheRawEntry(t testing.TB, c *Cache, key string) *entry {
	t.Helper()
	b, err := c.rdb.Get(context.Background(), c.valueKey(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		t.Fatalf("read entry %q: %v", key, err)
	}
	e, err := decodeEntry(key, b)
	if err != nil {
		t.Fatalf("decode entry %q: %v", key, err)
	}
	return e
}

func cacheItemKey(id int) string { return "item:" + strconv.Itoa(id) }

// cacheTestLogger logs warnings and errors to the test's log until the test
// ends.
func cacheTestLogger(t testing.TB) *slog.Logger {
	w := &cacheLogWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type cacheLogWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *cacheLogWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(b), "\n"))
	}
	return len(b), nil
}
