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

// TestPlanRebalanceByLoad: one shard holds a hot bucket and most of the
// load; the plan moves load off it until every shard is within 10% of
// the mean, moving no bucket without load.
func TestPlanRebalanceByLoad(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, testClusterConfig{Shards: 3, Layout: Layout{Buckets: 30}})
	ctx := context.Background()
	load := func(b int) int64 {
		switch {
		case b == 0:
			return 1000 // hot
		case b%3 == 0:
			return 100 // on s0 (round-robin bootstrap)
		case b < 6:
			return 10
		}
		return 0
	}
	plan, err := tc.Cluster.PlanRebalanceByLoad(ctx, load, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	sum := map[string]int64{}
	var total int64
	for b := range 30 {
		owner, _ := tc.Cluster.ShardOfBucket(b)
		s := owner.Name()
		if to, ok := plan[b]; ok {
			s = to
			if load(b) == 0 {
				t.Errorf("bucket %d without load moves", b)
			}
		}
		sum[s] += load(b)
		total += load(b)
	}
	t.Logf("plan %v → loads %v", plan, sum)
	if len(plan) == 0 {
		t.Fatalf("no moves for a skewed load %v", sum)
	}
	// 1,940 in all: the hot bucket (1,000) stays a shard's whole share,
	// and the other two shards split the remaining 940 within one
	// 100-bucket of each other.
	lo, hi := int64(1<<62), int64(0)
	for _, l := range sum {
		if l < 1000 {
			lo, hi = min(lo, l), max(hi, l)
		}
	}
	if hi-lo > 100 {
		t.Errorf("loads after the plan %v: the shards without the hot bucket differ by %d, want at most one bucket's 100", sum, hi-lo)
	}
}
