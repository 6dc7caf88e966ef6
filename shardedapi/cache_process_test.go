package shardedapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/assetctl/assetctl/internal/testsvc"
)

// The cross-process stampede test re-runs this test binary as child
// processes; this variable switches a child into its role.
const cacheChildEnv = "SHARDEDAPI_CACHE_TEST_CHILD"

type cacheChildConfig struct {
	DSN     string `json:"dsn"`
	Prefix  string `json:"prefix"`
	ID      int    `json:"id"`
	Readers int    `json:"readers"`
	DelayMS int    `json:"delay_ms"` // extra load time, so processes overlap
	Want    string `json:"want"`
}

type cacheChildResult struct {
	Bad        int64  `json:"bad"`
	FirstError string `json:"first_error,omitempty"`
	Loads      int64  `json:"loads"`
	LockWaits  int64  `json:"lock_waits"`
	Stale      int64  `json:"stale"`
}

// TestCacheStampedeAcrossProcesses: four processes sharing Redis each
// receive concurrent reads of a key that has just expired; PostgreSQL sees
// at most one query in all.
func TestCacheStampedeAcrossProcesses(t *testing.T) {
	if cfg := os.Getenv(cacheChildEnv); cfg != "" {
		cacheChild(t, cfg)
		return
	}
	for _, tt := range []struct {
		name  string
		stale bool
	}{{"entry gone", false}, {"entry expired but kept", true}} {
		t.Run(tt.name, func(t *testing.T) {
			rdb, prefix := testsvc.Redis(t)
			db := newCacheTestDB(t)
			db.put(t, 1, "fresh")
			c := newCacheForTest(t, rdb, CacheOptions{Prefix: prefix})
			key := cacheItemKey(1)
			if tt.stale {
				cachePutRaw(t, c, key, &entry{payload: []byte("fresh"), expiry: time.Now().Add(-time.Millisecond).UnixNano()}, time.Minute)
			}
			before := db.scans(t)

			const procs, readers = 4, 1250 // 5,000 reads in all
			cfg, _ := json.Marshal(cacheChildConfig{DSN: db.dsn, Prefix: prefix, ID: 1, Readers: readers, Want: "fresh", DelayMS: 100})
			type child struct {
				cmd   *exec.Cmd
				stdin *os.File
				out   *bufio.Scanner
			}
			var children []child
			for i := range procs {
				cmd := exec.Command(os.Args[0], "-test.run=^TestCacheStampedeAcrossProcesses$", "-test.count=1")
				cmd.Env = append(os.Environ(), cacheChildEnv+"="+string(cfg))
				cmd.Stderr = os.Stderr
				r, w, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				cmd.Stdin = r
				stdout, err := cmd.StdoutPipe()
				if err != nil {
					t.Fatal(err)
				}
				if err := cmd.Start(); err != nil {
					t.Fatalf("start child %d: %v", i, err)
				}
				r.Close()
				t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
				children = append(children, child{cmd: cmd, stdin: w, out: bufio.NewScanner(stdout)})
			}
			// Each child says "ready" once its cache and readers are set up;
			// then all are released together.
			for i, ch := range children {
				if !cacheScanTo(ch.out, "ready") {
					t.Fatalf("child %d did not get ready", i)
				}
			}
			for _, ch := range children {
				fmt.Fprintln(ch.stdin, "go")
				ch.stdin.Close()
			}
			var loads, waits, stale int64
			for i, ch := range children {
				var res cacheChildResult
				if !cacheScanTo(ch.out, "result ") {
					t.Fatalf("child %d printed no result", i)
				}
				if err := json.Unmarshal(ch.out.Bytes()[len("result "):], &res); err != nil {
					t.Fatalf("child %d result: %v", i, err)
				}
				if res.Bad != 0 {
					t.Errorf("child %d: reads that failed or returned the wrong value: got %d, want 0 (first: %s)", i, res.Bad, res.FirstError)
				}
				loads, waits, stale = loads+res.Loads, waits+res.LockWaits, stale+res.Stale
				if err := ch.cmd.Wait(); err != nil {
					t.Errorf("child %d: %v", i, err)
				}
			}
			if got := db.scans(t) - before; got > 1 {
				t.Errorf("database queries (server side) for %d reads in %d processes: got %d, want at most 1", procs*readers, procs, got)
			}
			t.Logf("loads %d, lock waits %d, stale serves %d", loads, waits, stale)
			if loads > 1 {
				t.Errorf("loader calls in all processes: got %d, want at most 1", loads)
			}
		})
	}
}

func cacheScanTo(s *bufio.Scanner, prefix string) bool {
	for s.Scan() {
		if len(s.Text()) >= len(prefix) && s.Text()[:len(prefix)] == prefix {
			return true
		}
	}
	return false
}

// cacheChild is a child process's role: build a cache on the shared prefix,
// wait for "go" on stdin, run the readers, flush the statistics, print the
// result.
func cacheChild(t *testing.T, raw string) {
	var cfg cacheChildConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatalf("child config: %v", err)
	}
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: testsvc.SharedRedisAddr})
	defer rdb.Close()
	pool, err := pgxpool.New(ctx, cfg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	// A generous LockWait: on a busy machine the loading process may be
	// descheduled for a while, and a waiter that gives up loads by itself.
	c := newCacheForTest(t, rdb, CacheOptions{Prefix: cfg.Prefix, LockWait: 20 * time.Second})
	// Warm both connection pools so the herd measures the cache, not dials.
	if err := pool.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	var warm sync.WaitGroup
	for range 20 {
		warm.Go(func() { rdb.Ping(ctx) })
	}
	warm.Wait()

	var wg sync.WaitGroup
	var bad atomic.Int64
	var firstErr sync.Once
	var first string
	start := make(chan struct{})
	for range cfg.Readers {
		wg.Go(func() {
			<-start
			got, err := c.Get(ctx, cacheItemKey(cfg.ID), func(ctx context.Context) ([]byte, error) {
				v, err := cacheTestLoader(pool, cfg.ID)(ctx)
				time.Sleep(time.Duration(cfg.DelayMS) * time.Millisecond)
				return v, err
			})
			if err != nil || string(got) != cfg.Want {
				bad.Add(1)
				firstErr.Do(func() { first = fmt.Sprintf("%q, %v", got, err) })
			}
		})
	}
	fmt.Println("ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		t.Fatalf("wait for go: %v", err)
	}
	close(start)
	wg.Wait()
	cacheTestFlushStats(t, pool)
	out, _ := json.Marshal(cacheChildResult{
		Bad: bad.Load(), FirstError: first, Loads: cacheCount(c.m.loadOK) + cacheCount(c.m.loadError),
		LockWaits: cacheCount(c.m.lockWaits), Stale: cacheCount(c.m.staleServes),
	})
	fmt.Println("result " + string(out))
}
