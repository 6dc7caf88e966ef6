package shardedapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Stop one shard (a private PostgreSQL cluster): only the keys it owns
// fail, with ErrShardUnavailable naming it; every other key keeps working;
// cross-shard lists are flagged partial; and it all recovers on restart.
func TestStopOneShardFailsOnlyItsKeys(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, testClusterConfig{PrivateShard: true, Layout: Layout{Buckets: 64}})
	ctx := context.Background()
	const down = "s2" // the last shard lives in the private cluster
	byShard := map[string][]ID{}
	for i := range 60 {
		u, err := tc.Store.CreateUser(ctx, NewUser{Email: fmt.Sprintf("u%d@example.com", i), Name: "n"})
		if err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
		loc, _ := tc.Cluster.LocateID(u.ID)
		byShard[loc.Shard.Name()] = append(byShard[loc.Shard.Name()], u.ID)
	}
	if len(byShard) != 3 {
		t.Fatalf("users per shard: got %v, want users on all 3 shards", byShard)
	}

	tc.Private.Stop(t)

	for shard, ids := range byShard {
		for _, id := range ids {
			_, err := tc.Store.User(ctx, id)
			if shard != down {
				if err != nil {
					t.Errorf("user %d on live shard %s: got %v, want success", id, shard, err)
				}
				continue
			}
			var se *ShardError
			if !errors.Is(err, ErrShardUnavailable) || !errors.As(err, &se) || se.Shard != down {
				t.Errorf("user %d on stopped shard: got %v, want ErrShardUnavailable from shard %s", id, err, down)
			}
		}
	}
	// Writes: keys of live shards still succeed.
	for i := range 20 {
		email := fmt.Sprintf("late%d@example.com", i)
		loc, _ := tc.Cluster.Locate(Key{ID: email})
		_, err := tc.Store.CreateUser(ctx, NewUser{Email: email})
		if loc.Shard.Name() == down {
			if !errors.Is(err, ErrShardUnavailable) {
				t.Errorf("create on stopped shard: got %v, want ErrShardUnavailable", err)
			}
		} else if err != nil {
			t.Errorf("create on live shard %s: got %v, want success", loc.Shard.Name(), err)
		}
	}
	page, err := tc.Store.NewestUsers(ctx, 100, GatherOptions{PerShardTimeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("NewestUsers with a shard down: got %v, want a partial answer", err)
	}
	if !page.Partial || len(page.Failures) != 1 || page.Failures[0].Shard != down {
		t.Errorf("NewestUsers: got partial=%v failures=%v, want partial with %s failed", page.Partial, page.Failures, down)
	}
	for _, u := range page.Users {
		if loc, _ := tc.Cluster.LocateID(u.ID); loc.Shard.Name() == down {
			t.Errorf("NewestUsers returned user %d of the stopped shard", u.ID)
		}
	}
	report, err := tc.Cluster.Hotspots(ctx, HotspotOptions{})
	if err != nil || !report.Partial {
		t.Errorf("Hotspots with a shard down: got partial=%v, %v, want a partial report", report.Partial, err)
	}

	tc.Private.Start(t)
	for _, id := range byShard[down] {
		if _, err := tc.Store.User(ctx, id); err != nil {
			t.Errorf("user %d after the shard restarted: got %v, want success", id, err)
		}
	}
	page, err = tc.Store.NewestUsers(ctx, 100, GatherOptions{})
	if err != nil || page.Partial {
		t.Errorf("NewestUsers after restart: got partial=%v, %v, want a full answer", page.Partial, err)
	}
	if n := len(page.Users); n < 60 {
		t.Errorf("NewestUsers after restart: got %d users, want at least 60", n)
	}
}

// readRetries is the shard's count of reads retried on a fresh connection.
func readRetries(tc *testCluster, shard string) int64 {
	return tc.Cluster.shards[shard].tracer.retriesN.Load()
}

// A pooled connection that died while idle (the server restarted, or
// dropped it) fails the first read sent on it; idempotent reads retry once
// on a fresh connection, so callers see no error.
func TestReadsRetryOnDeadPooledConnection(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, testClusterConfig{PrivateShard: true, Layout: Layout{Buckets: 64}})
	ds, err := NewDocumentStore(tc.Cluster, DocumentStoreOptions{Collections: []CollectionConfig{{Name: "products"}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const shard = "s2" // in the private cluster
	var users []ID
	var docs []string
	for i := 0; len(users) < 3 || len(docs) < 3; i++ {
		email := fmt.Sprintf("r%d@example.com", i)
		if loc, _ := tc.Cluster.Locate(Key{ID: email}); loc.Shard.Name() == shard && len(users) < 3 {
			u, err := tc.Store.CreateUser(ctx, NewUser{Email: email})
			if err != nil {
				t.Fatal(err)
			}
			users = append(users, u.ID)
		}
		id := fmt.Sprintf("d%d", i)
		if loc, _ := tc.Cluster.Locate(Key{ID: "products/" + id}); loc.Shard.Name() == shard && len(docs) < 3 {
			if _, _, err := ds.Put(ctx, "products", id, json.RawMessage(`{}`), Precondition{}); err != nil {
				t.Fatal(err)
			}
			docs = append(docs, id)
		}
	}
	reads := []struct {
		name string
		read func() error
	}{
		{"Store.User", func() error { _, err := tc.Store.User(ctx, users[0]); return err }},
		{"DocumentStore.Get", func() error { _, err := ds.Get(ctx, "products", docs[0]); return err }},
		{"DocumentStore.List", func() error {
			p, err := ds.List(ctx, "products", 10, "", GatherOptions{})
			if err == nil && p.Partial {
				return fmt.Errorf("partial list: %v", p.Failures)
			}
			return err
		}},
		{"Store.NewestUsers", func() error {
			p, err := tc.Store.NewestUsers(ctx, 10, GatherOptions{})
			if err == nil && p.Partial {
				return fmt.Errorf("partial list: %v", p.Failures)
			}
			return err
		}},
	}
	admin, err := pgx.Connect(ctx, tc.Private.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	// The server drops the shard's pooled connections while they are idle
	// (and were used less than a second ago, so the pool does not ping
	// them): the next read meets a dead one, deterministically.
	for _, r := range reads {
		if err := r.read(); err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		var killed int
		if err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = $1 AND pid <> pg_backend_pid()`, tc.Cluster.shards[shard].pool.Config().ConnConfig.Database).Scan(&killed); err != nil || killed == 0 {
			t.Fatalf("terminate the shard's connections: %d, %v", killed, err)
		}
		before := readRetries(tc, shard)
		if err := r.read(); err != nil {
			t.Errorf("%s after its pooled connection died: %v, want success", r.name, err)
		}
		if n := readRetries(tc, shard) - before; n != 1 {
			t.Errorf("%s: %d retries on shard %s, want 1", r.name, n, shard)
		}
	}

	// A restart of the shard's server: the first reads after it succeed.
	for _, r := range reads {
		if err := r.read(); err != nil {
			t.Fatal(err)
		}
	}
	before := readRetries(tc, shard)
	tc.Private.Stop(t)
	tc.Private.Start(t)
	for _, r := range reads {
		if err := r.read(); err != nil {
			t.Errorf("%s right after the shard restarted: %v, want success", r.name, err)
		}
	}
	// Whether the restart needed a retry depends on how long it took: the
	// pool pings connections idle for over a second before handing them out.
	t.Logf("reads retried after the restart: %d", readRetries(tc, shard)-before)
}
