package shardedapi

import (
	"context"
	"fmt"
	"testing"
)

// TestRebalanceFourToFiveMovesAFifth: adding a fifth shard to four moves
// about 1/5 of the buckets, where hash % N would move about 4/5 of the
// keys.
func TestRebalanceFourToFiveMovesAFifth(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, testClusterConfig{Shards: 5, Layout: Layout{Regions: []Region{{Buckets: DefaultBuckets, Shards: []string{"s0", "s1", "s2", "s3"}}}}})
	ctx := context.Background()
	if err := tc.Cluster.AddShard(ctx, "s4", ""); err != nil {
		t.Fatal(err)
	}
	plan, err := tc.Cluster.PlanRebalance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// 1024 / 5 = 204.8: the new shard gets 204 or 205 buckets, all from
	// the old four, and nothing else moves.
	if len(plan) < 204 || len(plan) > 205 {
		t.Errorf("4 → 5 shards: %d bucket moves, want 204 or 205 (1/5 of 1024)", len(plan))
	}
	for b, to := range plan {
		if to != "s4" {
			t.Errorf("bucket %d moves to %s, want only moves to the new shard", b, to)
		}
	}
	const keys = 100_000
	moved := 0
	for i := range keys {
		id := fmt.Sprintf("key-%d", i)
		h := HashBucket(id, 1<<30)
		if h%4 != h%5 {
			moved++
		}
	}
	t.Logf("4 → 5 shards: %d of %d buckets move (%.1f%%); hash %% N would move %.1f%% of keys", len(plan), DefaultBuckets, 100*float64(len(plan))/DefaultBuckets, 100*float64(moved)/keys)
	if moved < keys*3/4 {
		t.Errorf("hash %% N baseline: %d of %d keys move, want about 4/5", moved, keys)
	}
}
