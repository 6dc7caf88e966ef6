package shardedapi_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/assetctl/assetctl/shardedapi"
)

// A read-through cache over the machine's Redis. In a service the loader
// queries the shard that owns the row; here it counts its calls.
func ExampleCache() {
	ctx := context.Background()
	rdb := redis.NewClient(shardedapi.CacheRedisOptions("127.0.0.1:6379")) // no retries within a call; OpTimeout reaches the socket
	defer rdb.Close()
	cache, err := shardedapi.NewCache(rdb, shardedapi.CacheOptions{
		Prefix:      "example:" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":",
		TTL:         time.Minute,
		NegativeTTL: time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close()

	queries := 0
	loadUser := func(ctx context.Context) ([]byte, error) {
		queries++ // SELECT ... FROM users WHERE id = 1
		return []byte(`{"id":1,"name":"Ada"}`), nil
	}
	for range 3 {
		if _, err := cache.Get(ctx, "user:1", loadUser); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("queries after 3 reads:", queries)

	// A write commits to the database first, then deletes the cached copy.
	if err := cache.Invalidate(ctx, "user:1"); err != nil {
		log.Print(err) // the write has committed: log, do not fail it
	}
	v, _ := cache.Get(ctx, "user:1", loadUser)
	fmt.Println("after the write:", string(v), "queries:", queries)

	// A missing row is cached briefly too.
	_, err = cache.Get(ctx, "user:404", func(context.Context) ([]byte, error) {
		return nil, shardedapi.ErrNotFound
	})
	fmt.Println("missing row:", errors.Is(err, shardedapi.ErrNotFound))
	if err := cache.Invalidate(ctx, "user:1"); err != nil {
		log.Print(err)
	}
	// Output:
	// queries after 3 reads: 1
	// after the write: {"id":1,"name":"Ada"} queries: 2
	// missing row: true
}
