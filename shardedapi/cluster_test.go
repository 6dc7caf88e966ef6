package shardedapi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRoutingUsesEveryShardAndMatchesIDs(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	tc := newTestCluster(t, testClusterConfig{Registerer: reg})
	ctx := context.Background()
	perShard := map[string]int{}
	for i := range 300 {
		loc, err := tc.Cluster.Locate(Key{ID: fmt.Sprintf("tenant-%d", i)})
		if err != nil {
			t.Fatalf("Locate: %v", err)
		}
		if loc.MapVersion != 1 {
			t.Errorf("map version: got %d, want 1", loc.MapVersion)
		}
		perShard[loc.Shard.Name()]++
	}
	if len(perShard) != 3 {
		t.Errorf("shards used by 300 keys: got %v, want all 3", perShard)
	}

	// Every created row is on the shard its ID's bucket names, and in the
	// bucket its email hashes to.
	before := time.Now().Add(-time.Millisecond)
	var last ID
	for i := range 30 {
		email := fmt.Sprintf("id%d@example.com", i)
		u, err := tc.Store.CreateUser(ctx, NewUser{Email: email})
		if err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
		if u.ID <= last {
			t.Errorf("ID order: got %d after %d, want increasing IDs for successive creates", u.ID, last)
		}
		last = u.ID
		want, _ := tc.Cluster.Locate(Key{ID: email})
		if u.ID.Bucket() != want.Bucket {
			t.Errorf("%s: ID bucket got %d, want %d", email, u.ID.Bucket(), want.Bucket)
		}
		if at := u.ID.Time(); at.Before(before) || at.After(time.Now().Add(time.Millisecond)) {
			t.Errorf("%s: ID time got %v, want between %v and now", email, at, before)
		}
		var n int
		if err := want.Shard.Pool().QueryRow(ctx, `SELECT count(*) FROM users WHERE id = $1`, int64(u.ID)).Scan(&n); err != nil || n != 1 {
			t.Errorf("%s: rows on shard %s: got %d, %v, want 1", email, want.Shard.Name(), n, err)
		}
		time.Sleep(2 * time.Millisecond) // successive IDs in distinct milliseconds
	}
	// Per-shard query metrics were recorded.
	var queries float64
	for _, s := range []string{"s0", "s1", "s2"} {
		queries += testutil.ToFloat64(tc.Cluster.metrics.queries.WithLabelValues(s, "ok"))
	}
	if queries < 60 {
		t.Errorf("shardedapi_db_queries_total over shards: got %v, want at least 60 (2 per create)", queries)
	}
	if n, err := testutil.GatherAndCount(reg, "shardedapi_db_query_duration_seconds"); err != nil || n < 3 {
		t.Errorf("latency series: got %d, %v, want one per shard at least", n, err)
	}
}

func TestInvalidKeysAreTypedErrors(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, testClusterConfig{Shards: 1})
	for _, c := range []struct {
		name string
		key  Key
	}{
		{"empty", Key{}},
		{"too long", Key{ID: strings.Repeat("k", MaxKeyLen+1)}},
		{"not utf-8", Key{ID: "\xc3\x28"}},
		{"unknown region", Key{Region: "eu", ID: "k"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := tc.Cluster.Locate(c.key); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("Locate(%q): got %v, want ErrInvalidKey", c.key.String(), err)
			}
		})
	}
	for _, id := range []ID{0, -1} {
		if _, err := tc.Cluster.LocateID(id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("LocateID(%d): got %v, want ErrInvalidID", id, err)
		}
	}
}

func TestOptionsAreValidated(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name string
		opts Options
		want string
	}{
		{"no catalog", Options{Shards: []ShardConfig{{Name: "a", DSN: "postgres://x"}}}, "CatalogDSN is empty"},
		{"no shards", Options{CatalogDSN: "postgres://x"}, "Shards is empty"},
		{"unnamed shard", Options{CatalogDSN: "postgres://x", Shards: []ShardConfig{{DSN: "postgres://x"}}}, "has no Name"},
		{"duplicate", Options{CatalogDSN: "postgres://x", Shards: []ShardConfig{{Name: "a", DSN: "d"}, {Name: "a", DSN: "d"}}}, "used twice"},
		{"no dsn", Options{CatalogDSN: "postgres://x", Shards: []ShardConfig{{Name: "a"}}}, "has no DSN"},
		{"bad dsn", Options{CatalogDSN: "postgres://x", Shards: []ShardConfig{{Name: "a", DSN: "::nonsense::"}}}, "parse connection string of shard a"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Open(ctx, c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Open: got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestLayoutIsValidatedAndFixed(t *testing.T) {
	t.Parallel()
	tc := setupTestDatabases(t, testClusterConfig{Shards: 2})
	ctx := context.Background()
	if err := Migrate(ctx, tc.Options); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, tc.Options); !errors.Is(err, ErrNotBootstrapped) {
		t.Errorf("Open before Bootstrap: got %v, want ErrNotBootstrapped", err)
	}
	for _, c := range []struct {
		name   string
		layout Layout
		want   string
	}{
		{"too many buckets", Layout{Buckets: MaxBuckets + 1}, "want 1..4096"},
		{"regions do not add up", Layout{Buckets: 8, Regions: []Region{{Name: "eu", Buckets: 4, Shards: []string{"s0"}}}}, "make them equal"},
		{"unknown shard in region", Layout{Buckets: 8, Regions: []Region{{Name: "eu", Buckets: 8, Shards: []string{"nope"}}}}, `names shard "nope"`},
		{"shard in two regions", Layout{Buckets: 8, Regions: []Region{{Name: "eu", Buckets: 4, Shards: []string{"s0"}}, {Name: "us", Buckets: 4, Shards: []string{"s0"}}}}, "belongs to one region"},
		{"ranges without range strategy", Layout{Ranges: []RangeRule{{From: ""}}}, "Strategy is hash"},
		{"range without start rule", Layout{Buckets: 8, Strategy: StrategyRange, Ranges: []RangeRule{{From: "m", Bucket: 1}}}, `no range rule with From ""`},
		{"unknown strategy", Layout{Strategy: "modulo"}, "unknown strategy"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := Bootstrap(ctx, tc.Options, c.layout)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Bootstrap: got %v, want an error containing %q", err, c.want)
			}
		})
	}
	if err := Bootstrap(ctx, tc.Options, Layout{Buckets: 16}); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	if err := Bootstrap(ctx, tc.Options, Layout{Buckets: 16}); err != nil {
		t.Errorf("Bootstrap again with the same layout: got %v, want nil", err)
	}
	if err := Bootstrap(ctx, tc.Options, Layout{Buckets: 32}); err == nil || !strings.Contains(err.Error(), "refusing to change") {
		t.Errorf("Bootstrap with another bucket count: got %v, want a refusal", err)
	}
}

func TestCatalogPointingAtUnknownShard(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, testClusterConfig{Layout: Layout{Buckets: 16}})
	ctx := context.Background()
	// A map version 2 sending buckets 3 and 5 to a shard nobody configured.
	if _, err := tc.Cluster.Catalog().Exec(ctx, `
		INSERT INTO map_versions (version) VALUES (2);
		INSERT INTO bucket_map (version, bucket, shard)
			SELECT 2, bucket, CASE WHEN bucket IN (3, 5) THEN 'ghost' ELSE shard END FROM bucket_map WHERE version = 1`); err != nil {
		t.Fatal(err)
	}
	err := tc.Cluster.Refresh(ctx)
	var unknown *UnknownShardError
	if !errors.As(err, &unknown) {
		t.Fatalf("Refresh: got %v, want an *UnknownShardError", err)
	}
	if unknown.Shard != "ghost" || fmt.Sprint(unknown.Buckets) != "[3 5]" || unknown.MapVersion != 2 {
		t.Errorf("UnknownShardError: got %+v, want shard ghost, buckets [3 5], version 2", unknown)
	}
	if v := tc.Cluster.MapVersion(); v != 1 {
		t.Errorf("map version after a refused refresh: got %d, want the previous 1", v)
	}
	if _, err := tc.Cluster.LocateID(mustID(t, 5)); err != nil {
		t.Errorf("routing after a refused refresh: got %v, want the old map to keep working", err)
	}
	// A new process refuses to start on that catalog.
	if _, err := Open(ctx, tc.Options); !errors.As(err, &unknown) {
		t.Errorf("Open: got %v, want an *UnknownShardError", err)
	}
	// Moving a bucket to an unknown shard is refused up front.
	if _, err := tc.Cluster.MoveBuckets(ctx, map[int]string{1: "ghost"}, "bad move"); !errors.As(err, &unknown) {
		t.Errorf("MoveBuckets to an unknown shard: got %v, want an *UnknownShardError", err)
	}
}

func mustID(t *testing.T, bucket int) ID {
	t.Helper()
	id, err := MakeID(time.Now(), bucket, 0)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestMoveBucketsVersionsTheMap(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, testClusterConfig{Layout: Layout{Buckets: 16}})
	ctx := context.Background()
	// A process refreshing in the background follows the move by itself.
	watcherOpts := tc.Options
	watcherOpts.RefreshInterval = 50 * time.Millisecond
	watcher, err := Open(ctx, watcherOpts)
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	from, _ := tc.Cluster.ShardOfBucket(4)
	to := "s0"
	if from.Name() == to {
		to = "s1"
	}
	v, err := tc.Cluster.MoveBuckets(ctx, map[int]string{4: to}, "rebalance")
	if err != nil {
		t.Fatalf("MoveBuckets: %v", err)
	}
	if v != 2 || tc.Cluster.MapVersion() != 2 {
		t.Errorf("map version: got %d (cluster %d), want 2", v, tc.Cluster.MapVersion())
	}
	if got, _ := tc.Cluster.ShardOfBucket(4); got.Name() != to {
		t.Errorf("bucket 4: got shard %s, want %s", got.Name(), to)
	}
	// Only bucket 4 moved.
	var changed int
	if err := tc.Cluster.Catalog().QueryRow(ctx, `SELECT count(*) FROM bucket_map a JOIN bucket_map b USING (bucket)
		WHERE a.version = 1 AND b.version = 2 AND a.shard <> b.shard`).Scan(&changed); err != nil || changed != 1 {
		t.Errorf("buckets changed between versions: got %d, %v, want 1", changed, err)
	}
	for deadline := time.Now().Add(30 * time.Second); watcher.MapVersion() != 2 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if got, _ := watcher.ShardOfBucket(4); watcher.MapVersion() != 2 || got.Name() != to {
		t.Errorf("background refresh: got version %d with bucket 4 on %s, want version 2 with it on %s", watcher.MapVersion(), got.Name(), to)
	}
	// Another process picks the new version up on open.
	other, err := Open(ctx, tc.Options)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if got, _ := other.ShardOfBucket(4); got.Name() != to || other.MapVersion() != 2 {
		t.Errorf("other process: bucket 4 on %s at version %d, want %s at 2", got.Name(), other.MapVersion(), to)
	}
}

func TestRegionsPinKeysToTheirShards(t *testing.T) {
	t.Parallel()
	layout := Layout{Buckets: 64, Regions: []Region{
		{Name: "eu", Buckets: 32, Shards: []string{"s0", "s1"}},
		{Name: "us", Buckets: 32, Shards: []string{"s2"}},
	}}
	tc := newTestCluster(t, testClusterConfig{Layout: layout})
	ctx := context.Background()
	for i := range 200 {
		for region, shards := range map[string]string{"eu": "s0 s1", "us": "s2"} {
			loc, err := tc.Cluster.Locate(Key{Region: region, ID: fmt.Sprintf("k%d", i)})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(shards, loc.Shard.Name()) {
				t.Fatalf("key k%d of %s: got shard %s, want one of %s", i, region, loc.Shard.Name(), shards)
			}
			if loc.Shard.Region() != region {
				t.Fatalf("shard %s region: got %q, want %q", loc.Shard.Name(), loc.Shard.Region(), region)
			}
		}
	}
	u, err := tc.Store.CreateUser(ctx, NewUser{Region: "eu", Email: "hans@example.de"})
	if err != nil {
		t.Fatal(err)
	}
	loc, _ := tc.Cluster.LocateID(u.ID)
	if loc.Shard.Region() != "eu" {
		t.Errorf("EU user's shard: got region %q, want eu", loc.Shard.Region())
	}
	// Keys without a region: this dataset has no "" region.
	if _, err := tc.Cluster.Locate(Key{ID: "k"}); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("key without region: got %v, want ErrInvalidKey", err)
	}
	// Buckets never leave their region.
	_, err = tc.Cluster.MoveBuckets(ctx, map[int]string{0: "s2"}, "cross-region")
	if err == nil || !strings.Contains(err.Error(), "never leave their region") {
		t.Errorf("cross-region move: got %v, want a refusal", err)
	}
}

func TestRangeStrategyAndDirectory(t *testing.T) {
	t.Parallel()
	layout := Layout{Buckets: 8, Strategy: StrategyRange, Ranges: []RangeRule{
		{From: "", Bucket: 0}, {From: "h", Bucket: 3}, {From: "q", Bucket: 7},
	}}
	tc := newTestCluster(t, testClusterConfig{Layout: layout})
	ctx := context.Background()
	for key, want := range map[string]int{"apple": 0, "g~": 0, "h": 3, "kiwi": 3, "q": 7, "zebra": 7} {
		loc, err := tc.Cluster.Locate(Key{ID: key})
		if err != nil || loc.Bucket != want {
			t.Errorf("Locate(%q): got bucket %d, %v, want %d", key, loc.Bucket, err, want)
		}
	}
	// A directory entry moves one tenant to its own bucket.
	if err := tc.Cluster.Assign(ctx, Key{ID: "kiwi"}, 5); err != nil {
		t.Fatalf("Assign: %v", err)
	}
	if loc, _ := tc.Cluster.Locate(Key{ID: "kiwi"}); loc.Bucket != 5 {
		t.Errorf("kiwi after Assign: got bucket %d, want 5", loc.Bucket)
	}
	if err := tc.Cluster.Assign(ctx, Key{ID: "kiwi"}, 6); err == nil || !strings.Contains(err.Error(), "already assigned to bucket 5") {
		t.Errorf("re-Assign: got %v, want a refusal", err)
	}
	if err := tc.Cluster.Assign(ctx, Key{ID: "fig"}, 99); err == nil {
		t.Errorf("Assign to bucket 99 of 8: got nil, want an error")
	}
}

func TestMigrateIsIdempotentAndLagIsReported(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, testClusterConfig{Shards: 2})
	ctx := context.Background()
	if err := Migrate(ctx, tc.Options); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	// Roll shard s1 back one version, as if it missed the last deploy.
	cfg, err := pgx.ParseConfig(tc.ShardDSN["s1"])
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDB(*cfg)
	p, err := newMigrationProvider("s1", db, tc.Cluster.log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Down(ctx); err != nil {
		t.Fatalf("roll s1 back: %v", err)
	}
	db.Close()
	_, err = Open(ctx, tc.Options)
	var lag *SchemaLagError
	if !errors.As(err, &lag) {
		t.Fatalf("Open with a lagging shard: got %v, want a *SchemaLagError", err)
	}
	if want := (SchemaLagError{Database: "s1", Have: wantVersion("s1") - 1, Want: wantVersion("s1")}); *lag != want {
		t.Errorf("SchemaLagError: got %+v, want %+v", *lag, want)
	}
	if !strings.Contains(err.Error(), "run shardedapi.Migrate") {
		t.Errorf("message: got %q, want it to say to run Migrate", err)
	}
	if err := Migrate(ctx, tc.Options); err != nil {
		t.Fatalf("Migrate to catch up: %v", err)
	}
	c, err := Open(ctx, tc.Options)
	if err != nil {
		t.Fatalf("Open after catching up: %v", err)
	}
	c.Close()
}

func TestGatherFlagsSlowShardsAsPartial(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, testClusterConfig{})
	ctx := context.Background()
	g, err := Gather(ctx, tc.Cluster, GatherOptions{PerShardTimeout: 1500 * time.Millisecond}, func(ctx context.Context, s *Shard) ([]string, error) {
		sleep := 0.0
		if s.Name() == "s1" {
			sleep = 10
		}
		if _, err := s.Pool().Exec(ctx, `SELECT pg_sleep($1)`, sleep); err != nil {
			return nil, err
		}
		return []string{s.Name()}, nil
	})
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	if !g.Partial || len(g.Failures) != 1 || g.Failures[0].Shard != "s1" {
		t.Fatalf("got partial=%v failures=%v, want partial with s1 failed", g.Partial, g.Failures)
	}
	if !errors.Is(g.Failures[0].Err, ErrShardUnavailable) {
		t.Errorf("slow shard's error: got %v, want ErrShardUnavailable", g.Failures[0].Err)
	}
	if fmt.Sprint(g.Items) != "[s0 s2]" {
		t.Errorf("items: got %v, want [s0 s2]", g.Items)
	}
	// All shards failing is an error, not an empty answer.
	_, err = Gather(ctx, tc.Cluster, GatherOptions{}, func(ctx context.Context, s *Shard) ([]int, error) {
		_, err := s.Pool().Exec(ctx, `SELECT * FROM no_such_table`)
		return nil, err
	})
	if err == nil || !strings.Contains(err.Error(), "no shard answered") {
		t.Errorf("Gather with every shard failing: got %v, want an error", err)
	}
}

func TestHotspotReport(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, testClusterConfig{Layout: Layout{Buckets: 32}})
	ctx := context.Background()
	var ids []ID
	for i := range 40 {
		u, err := tc.Store.CreateUser(ctx, NewUser{Email: fmt.Sprintf("hot%d@example.com", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, u.ID)
	}
	hot := ids[7]
	for range 25 {
		if _, err := tc.Store.User(ctx, hot); err != nil {
			t.Fatal(err)
		}
	}
	r, err := tc.Cluster.Hotspots(ctx, HotspotOptions{})
	if err != nil {
		t.Fatalf("Hotspots: %v", err)
	}
	var rows, writes, buckets int64
	for _, s := range r.Shards {
		if s.Queries == 0 {
			t.Errorf("shard %s: got 0 SQL queries, want the creates and counts", s.Shard)
		}
		rows += s.Rows
		writes += s.Writes
		buckets += int64(s.Buckets)
		if s.Stray != 0 {
			t.Errorf("shard %s stray rows: got %d, want 0", s.Shard, s.Stray)
		}
	}
	if rows != 40 || writes != 40 || buckets != 32 {
		t.Errorf("totals: got rows %d writes %d buckets %d, want 40, 40, 32", rows, writes, buckets)
	}
	top := r.HottestBuckets(1)[0]
	if top.Bucket != hot.Bucket() || top.Reads < 25 {
		t.Errorf("hottest bucket: got %+v, want bucket %d with >= 25 reads", top, hot.Bucket())
	}
	var sb strings.Builder
	if err := r.WriteText(&sb, 3); err != nil {
		t.Fatal(err)
	}
	if out := sb.String(); !strings.Contains(out, "hottest 3 buckets") || !strings.Contains(out, "s2") {
		t.Errorf("WriteText: got\n%s\nwant the shard table and the hottest buckets", out)
	}
	if r.Skew() < 1 {
		t.Errorf("Skew: got %v, want >= 1", r.Skew())
	}
}

// Several processes deploying at once may all run Migrate: goose's
// advisory lock serializes them per database and each succeeds.
func TestConcurrentMigrate(t *testing.T) {
	t.Parallel()
	tc := setupTestDatabases(t, testClusterConfig{Shards: 2})
	ctx := context.Background()
	errs := make(chan error, 4)
	for range 4 {
		go func() { errs <- Migrate(ctx, tc.Options) }()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent Migrate: %v", err)
		}
	}
	for name, dsn := range tc.ShardDSN {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		var applied int
		err = conn.QueryRow(ctx, `SELECT count(*) FROM `+schemaTable+` WHERE version_id > 0`).Scan(&applied)
		conn.Close(ctx)
		if want := int(wantVersion(name)); err != nil || applied != want {
			t.Errorf("%s: applied migrations got %d, %v, want %d (each once)", name, applied, err, want)
		}
	}
}

// Adding a shard: the plan moves only the new shard's share of buckets,
// and afterwards every shard holds an even share.
func TestAddShardAndRebalance(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, testClusterConfig{Layout: Layout{Buckets: 16, Regions: []Region{{Buckets: 16, Shards: []string{"s0", "s1"}}}}})
	ctx := context.Background()
	if plan, err := tc.Cluster.PlanRebalance(ctx); err != nil || len(plan) != 0 {
		t.Fatalf("plan of a balanced map: got %v, %v, want no moves", plan, err)
	}
	if err := tc.Cluster.AddShard(ctx, "s2", ""); err != nil {
		t.Fatalf("AddShard: %v", err)
	}
	plan, err := tc.Cluster.PlanRebalance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != 5 {
		t.Errorf("moves to spread 16 buckets over 3 shards: got %d (%v), want 5", len(plan), plan)
	}
	for b, to := range plan {
		if to != "s2" {
			t.Errorf("bucket %d moves to %s, want every move onto the new shard s2", b, to)
		}
	}
	if _, err := tc.Cluster.MoveBuckets(ctx, plan, "add s2"); err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for b := range 16 {
		s, _ := tc.Cluster.ShardOfBucket(b)
		count[s.Name()]++
	}
	for s, n := range count {
		if n < 5 || n > 6 {
			t.Errorf("buckets on %s after rebalance: got %d, want 5 or 6", s, n)
		}
	}
	if err := tc.Cluster.AddShard(ctx, "nope", ""); err == nil {
		t.Errorf("AddShard of an unconfigured shard: got nil, want an error")
	}
}
