package shardedapi

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// One live owner per registered collector, for Clusters as for Caches: a
// second one on the same Registerer fails with an error that says what to
// do, and Close frees the names.
func TestMetricsRegistrationOneOwnerPerRegisterer(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	tc := newTestCluster(t, testClusterConfig{Shards: 1, Registerer: reg})
	ctx := context.Background()
	if c, err := Open(ctx, tc.Options); err == nil || !strings.Contains(err.Error(), "another open Cluster") {
		if c != nil {
			c.Close()
		}
		t.Fatalf("second Open on one Registerer: got %v, want an error naming the other Cluster", err)
	}
	// The failed Open left the first Cluster's series registered and intact.
	if _, err := tc.Store.CreateUser(ctx, NewUser{Email: "m@example.com"}); err != nil {
		t.Fatal(err)
	}
	if n := shardQueries(tc, "s0"); n == 0 {
		t.Errorf("the first Cluster's query counter did not move")
	}
	wrapped := tc.Options
	wrapped.Registerer = prometheus.WrapRegistererWithPrefix("second_", reg)
	second, err := Open(ctx, wrapped)
	if err != nil {
		t.Fatalf("Open with a wrapped Registerer: %v", err)
	}
	second.Close()
	tc.Cluster.Close()
	again, err := Open(ctx, tc.Options)
	if err != nil {
		t.Fatalf("Open after the first Cluster closed: %v", err)
	}
	again.Close()

	rdb := redis.NewClient(CacheRedisOptions("127.0.0.1:6379"))
	defer rdb.Close()
	c1, err := NewCache(rdb, CacheOptions{Registerer: reg, Name: "docs"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewCache(rdb, CacheOptions{Registerer: reg, Name: "docs"}); err == nil || !strings.Contains(err.Error(), "CacheOptions.Name") {
		t.Errorf("second NewCache with one Name: got %v, want an error naming CacheOptions.Name", err)
	}
	c1.Close()
	c2, err := NewCache(rdb, CacheOptions{Registerer: reg, Name: "docs"})
	if err != nil {
		t.Fatalf("NewCache after the first closed: %v", err)
	}
	c2.Close()
}
