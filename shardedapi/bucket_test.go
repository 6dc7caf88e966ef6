package shardedapi

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// The hash must never change for a dataset's life: pin values. XXH64("")
// is the spec's 0xEF46DB3751D8E999, and 0x999 % 1024 = 409.
func TestHashBucketIsStable(t *testing.T) {
	for _, tc := range []struct {
		key           string
		buckets, want int
	}{
		{"", 1024, 409},
		{"ada@example.com", 1024, 973},
		{"tenant-42", 1024, 832},
		{"ünïcödé", 1024, 492},
		{"x", 1024, 291},
		{"ada@example.com", 7, 6},
		{"tenant-42", 7, 3},
	} {
		t.Run(tc.key, func(t *testing.T) {
			if got := HashBucket(tc.key, tc.buckets); got != tc.want {
				t.Errorf("HashBucket(%q, %d): got %d, want %d", tc.key, tc.buckets, got, tc.want)
			}
		})
	}
}

// keyDistribution routes n pseudo-random keys and returns the max/mean
// load per shard for a bucket→shard round-robin map.
func keyDistribution(n, buckets, shards int, seed uint64) float64 {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	perShard := make([]int, shards)
	var buf []byte
	for range n {
		buf = strconv.AppendUint(buf[:0], rng.Uint64(), 36)
		b := HashBucket(string(buf), buckets)
		perShard[b%shards]++
	}
	most := 0
	for _, c := range perShard {
		most = max(most, c)
	}
	return float64(most) / (float64(n) / float64(shards))
}

// The distribution target: 1,000,000 random keys, 1024 buckets,
// 4 shards, max/mean per shard <= 1.05.
func TestKeyDistribution(t *testing.T) {
	got := keyDistribution(1_000_000, 1024, 4, 1)
	if got > 1.05 {
		t.Errorf("max/mean keys per shard: got %.4f, want <= 1.05", got)
	}
	t.Logf("max/mean keys per shard: %.4f", got)
}
