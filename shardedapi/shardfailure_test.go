package shardedapi

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
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
