package origin

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/assetctl/assetctl/internal/testsvc"
	"github.com/assetctl/assetctl/shardedapi"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
)

// stackConfig shapes a test data layer. The zero value is four shards on
// the machine's PostgreSQL, the machine's Redis as cache (no L1).
type stackConfig struct {
	// PrivateShard puts the last shard (s3) in a private PostgreSQL
	// cluster the test can Stop and Start.
	PrivateShard bool
	// PrivateRedis uses a private redis-server the test can Kill.
	PrivateRedis bool
	// NoCache reads straight from the shards.
	NoCache bool
	// L1Size enables the cache's in-process tier.
	L1Size int
	// MaxDocBytes is the store's document size limit (default 1 MiB).
	MaxDocBytes int
}

// stack is a migrated, bootstrapped 4-shard cluster with a document store
// of two collections: products (unique "sku") and users (unique "email").
// Everything is dropped or stopped when the test ends.
type stack struct {
	Cluster *shardedapi.Cluster
	Docs    *shardedapi.DocumentStore
	Cache   *shardedapi.Cache
	RDB     redis.UniversalClient
	Redis   *testsvc.RedisServer // PrivateRedis only
	Private *testsvc.Postgres    // PrivateShard only
}

var testCollections = []shardedapi.CollectionConfig{
	{Name: "products", Unique: []string{"sku"}},
	{Name: "users", Unique: []string{"email"}},
}

func newStack(t testing.TB, cfg stackConfig) *stack {
	t.Helper()
	ctx := context.Background()
	pg := testsvc.MachinePostgres(t)
	st := &stack{}
	opts := shardedapi.Options{CatalogDSN: pg.CreateDatabase(t, "origin_catalog"), RefreshInterval: -1}
	for i := range 4 {
		server := pg
		if cfg.PrivateShard && i == 3 {
			st.Private = testsvc.StartPostgres(t)
			server = st.Private
		}
		name := fmt.Sprintf("s%d", i)
		opts.Shards = append(opts.Shards, shardedapi.ShardConfig{Name: name, DSN: server.CreateDatabase(t, "origin_"+name)})
	}
	if err := shardedapi.Migrate(ctx, opts); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if err := shardedapi.Bootstrap(ctx, opts, shardedapi.Layout{}); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	c, err := shardedapi.Open(ctx, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	st.Cluster = c
	dopts := shardedapi.DocumentStoreOptions{Collections: testCollections, MaxBodyBytes: cfg.MaxDocBytes}
	if !cfg.NoCache {
		prefix := ""
		if cfg.PrivateRedis {
			st.Redis = testsvc.StartRedis(t)
			st.RDB = st.Redis.Client(t)
			prefix = "origin-test:"
		} else {
			st.RDB, prefix = testsvc.Redis(t)
		}
		cache, err := shardedapi.NewCache(st.RDB, shardedapi.CacheOptions{Prefix: prefix, L1Size: cfg.L1Size,
			Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatalf("NewCache: %v", err)
		}
		t.Cleanup(func() { cache.Close() })
		st.Cache = cache
		dopts.Cache = cache
	}
	st.Docs, err = shardedapi.NewDocumentStore(c, dopts)
	if err != nil {
		t.Fatalf("NewDocumentStore: %v", err)
	}
	return st
}

// shardOf names the shard a document lives on.
func (st *stack) shardOf(t testing.TB, collection, id string) string {
	t.Helper()
	loc, err := st.Cluster.Locate(shardedapi.Key{ID: collection + "/" + id})
	if err != nil {
		t.Fatalf("locate %s/%s: %v", collection, id, err)
	}
	return loc.Shard.Name()
}

const testToken = "s3cret-token"

// newTestAPI is an API over st's store with token testToken, products
// public and shared (s-maxage 300), users token-protected.
func newTestAPI(t testing.TB, st *stack, mod func(*APIOptions)) *API {
	t.Helper()
	o := APIOptions{
		Collections: []APICollection{
			{Name: "products", Cache: CachePolicy{SMaxAge: 300e9, StaleWhileRevalidate: 30e9, StaleIfError: 600e9}},
			{Name: "users", PrivateReads: true},
		},
		Tokens:       []string{"other-token", testToken},
		MaxBodyBytes: 4096,
	}
	if mod != nil {
		mod(&o)
	}
	a, err := NewAPI(st.Docs, o)
	if err != nil {
		t.Fatalf("NewAPI: %v", err)
	}
	t.Cleanup(func() { _ = a.Close(context.Background()) })
	return a
}

// call runs one request through h in-process and returns the response.
func call(t testing.TB, h http.Handler, method, path, body string, hdr ...string) *http.Response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	resp := rec.Result()
	resp.Request = req
	return resp
}

func readBody(t testing.TB, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return string(b)
}

// want checks a response's status, failing with its body.
func want(t testing.TB, resp *http.Response, status int) string {
	t.Helper()
	body := readBody(t, resp)
	if resp.StatusCode != status {
		t.Fatalf("%s %s: got status %d, want %d; body %s", resp.Request.Method, resp.Request.URL, resp.StatusCode, status, body)
	}
	return body
}

var auth = []string{"Authorization", "Bearer " + testToken}

func with(h ...[]string) []string {
	var out []string
	for _, x := range h {
		out = append(out, x...)
	}
	return out
}

// testutilValue reads a counter's value.
func testutilValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
