package shardedapi

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// memoryCluster is a Cluster with an in-memory routing table (no
// databases), for routing benchmarks.
func memoryCluster(buckets, shards int) *Cluster {
	c := &Cluster{}
	t := &routingTable{version: 1, buckets: buckets, regions: map[string]regionRange{"": {0, buckets}}, directory: map[Key]int{}}
	all := make([]*Shard, shards)
	for i := range all {
		all[i] = &Shard{name: "s" + strconv.Itoa(i), tracer: &tracer{}}
	}
	t.shardOf = make([]*Shard, buckets)
	for b := range t.shardOf {
		t.shardOf[b] = all[b%shards]
	}
	c.table.Store(t)
	return c
}

// BenchmarkKeyDistribution reports max/mean keys per shard for 1,000,000
// random keys over 1024 buckets and 4 shards (target <= 1.05).
func BenchmarkKeyDistribution(b *testing.B) {
	var ratio float64
	for i := 0; b.Loop(); i++ {
		ratio = keyDistribution(1_000_000, 1024, 4, uint64(i+1))
	}
	b.ReportMetric(ratio, "max/mean")
}

// BenchmarkLocate measures a full Locate (validation, region, directory,
// hash, map) against the bare hash as a baseline measured in the same run.
func BenchmarkLocate(b *testing.B) {
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = "tenant-" + strconv.Itoa(i*7919)
	}
	c := memoryCluster(1024, 4)
	start := time.Now()
	n := 0
	for i := 0; b.Loop(); i++ {
		if _, err := c.Locate(Key{ID: keys[i&4095]}); err != nil {
			b.Fatal(err)
		}
		n++
	}
	per := time.Since(start).Seconds() / float64(n)
	// Baseline in the same run: the bare hash over the same keys, as many
	// times (testing.Benchmark cannot nest inside a running benchmark).
	sink := 0
	start = time.Now()
	for i := range n {
		sink += HashBucket(keys[i&4095], 1024)
	}
	basePer := time.Since(start).Seconds() / float64(n)
	_ = sink
	b.ReportMetric(basePer*1e9, "ns/op-hash-baseline")
	b.ReportMetric(per/basePer, "x-vs-baseline")
}

// FuzzLocate: any key either routes to a bucket inside the layout and a
// shard, or fails with ErrInvalidKey; it never panics.
func FuzzLocate(f *testing.F) {
	for _, s := range []string{"", "tenant-1", "ünï", "\xff\xfe", strings.Repeat("k", MaxKeyLen+1)} {
		f.Add("", s)
	}
	f.Add("eu", "x")
	c := memoryCluster(1024, 4)
	f.Fuzz(func(t *testing.T, region, id string) {
		loc, err := c.Locate(Key{Region: region, ID: id})
		if err != nil {
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("Locate(%q, %q): got %v, want ErrInvalidKey", region, id, err)
			}
			return
		}
		if loc.Bucket < 0 || loc.Bucket >= 1024 || loc.Shard == nil {
			t.Fatalf("Locate(%q, %q): got bucket %d shard %v", region, id, loc.Bucket, loc.Shard)
		}
	})
}
