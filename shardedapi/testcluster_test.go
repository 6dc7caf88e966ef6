package shardedapi

import (
	"context"
	"fmt"
	"testing"

	"github.com/assetctl/assetctl/internal/testsvc"
	"github.com/prometheus/client_golang/prometheus"
)

// testClusterConfig shapes a test dataset. The zero value is three shards
// on the machine's PostgreSQL and a catalog, with the default layout.
type testClusterConfig struct {
	Shards int // default 3
	// PrivateShard puts the last shard in a private PostgreSQL cluster
	// that the test can Stop and Start (testCluster.Private).
	PrivateShard bool
	Layout       Layout
	Registerer   prometheus.Registerer
	Store        StoreOptions // the Store's options (e.g. its Cache)
}

// testCluster is a migrated, bootstrapped, open dataset whose databases
// are dropped when the test ends. The cache tests build on it: keep its
// fields stable.
type testCluster struct {
	Options  Options
	Cluster  *Cluster
	Store    *Store
	ShardDSN map[string]string // shard name → DSN, for server-side checks
	Private  *testsvc.Postgres // the private cluster, if PrivateShard
}

// newTestCluster creates the databases (unique names), runs Migrate and
// Bootstrap, and opens the cluster with background refresh off.
func newTestCluster(t testing.TB, cfg testClusterConfig) *testCluster {
	t.Helper()
	tc := setupTestDatabases(t, cfg)
	ctx := context.Background()
	if err := Migrate(ctx, tc.Options); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if err := Bootstrap(ctx, tc.Options, cfg.Layout); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	tc.open(t)
	tc.Store = NewStore(tc.Cluster, cfg.Store)
	return tc
}

// setupTestDatabases only creates the empty databases and Options.
func setupTestDatabases(t testing.TB, cfg testClusterConfig) *testCluster {
	t.Helper()
	if cfg.Shards == 0 {
		cfg.Shards = 3
	}
	pg := testsvc.MachinePostgres(t)
	tc := &testCluster{ShardDSN: map[string]string{}}
	tc.Options = Options{
		CatalogDSN:      pg.CreateDatabase(t, "shardedapi_catalog"),
		RefreshInterval: -1,
		Registerer:      cfg.Registerer,
	}
	for i := range cfg.Shards {
		name := fmt.Sprintf("s%d", i)
		server := pg
		if cfg.PrivateShard && i == cfg.Shards-1 {
			tc.Private = testsvc.StartPostgres(t)
			server = tc.Private
		}
		dsn := server.CreateDatabase(t, "shardedapi_"+name)
		tc.ShardDSN[name] = dsn
		tc.Options.Shards = append(tc.Options.Shards, ShardConfig{Name: name, DSN: dsn})
	}
	return tc
}

func (tc *testCluster) open(t testing.TB) {
	t.Helper()
	c, err := Open(context.Background(), tc.Options)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	tc.Cluster = c
}
