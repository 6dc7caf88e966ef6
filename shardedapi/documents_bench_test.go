package shardedapi

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/assetctl/assetctl/internal/testsvc"
)

// BenchmarkCacheDocumentGet measures DocumentStore.Get of a 1 KiB document
// answered by the in-process tier, interleaved with Cache.Get of the same
// key (the raw cached bytes) in the same loop: x-vs-Cache.Get is the raw
// read's time over the document read's (1.0: decoding the document costs
// nothing; it is a header read and a slice, no JSON parsing).
func BenchmarkCacheDocumentGet(b *testing.B) {
	rdb, prefix := testsvc.Redis(b)
	c := newCacheForTest(b, rdb, CacheOptions{Prefix: prefix, TTL: time.Hour, L1Size: 1000, L1TTL: time.Hour, Registerer: prometheus.NewRegistry()})
	tc := newTestCluster(b, testClusterConfig{Shards: 1})
	ds, err := NewDocumentStore(tc.Cluster, DocumentStoreOptions{Collections: []CollectionConfig{{Name: "products"}}, Cache: c})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	body := json.RawMessage(`{"name":"lamp","description":"` + strings.Repeat("x", 1000) + `"}`)
	if _, _, err := ds.Put(ctx, "products", "lamp", body, Precondition{}); err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); cacheCount(c.m.hitL1) == 0; {
		if _, err := ds.Get(ctx, "products", "lamp"); err != nil {
			b.Fatal(err)
		}
		if time.Now().After(deadline) {
			b.Fatal("the in-process tier never answered")
		}
		time.Sleep(time.Millisecond)
	}
	key := DocumentCacheKey("products", "lamp")
	noLoad := func(context.Context) ([]byte, error) {
		b.Error("loader called: not an in-process hit")
		return nil, ErrNotFound
	}
	var raw, doc time.Duration
	for b.Loop() {
		t0 := time.Now()
		v, err1 := c.Get(ctx, key, noLoad)
		t1 := time.Now()
		d, err2 := ds.Get(ctx, "products", "lamp")
		t2 := time.Now()
		if err1 != nil || err2 != nil || len(d.Body) != len(v)-docCacheHeaderSize {
			b.Fatalf("Cache.Get: %d bytes, %v; DocumentStore.Get: %d bytes, %v", len(v), err1, len(d.Body), err2)
		}
		raw += t1.Sub(t0)
		doc += t2.Sub(t1)
	}
	b.ReportMetric(float64(raw.Nanoseconds())/float64(b.N), "Cache.Get-ns/read")
	b.ReportMetric(float64(doc.Nanoseconds())/float64(b.N), "DocumentStore.Get-ns/read")
	b.ReportMetric(float64(raw)/float64(doc), "x-vs-Cache.Get")
}
