package shardedapi

import (
	"context"
	"testing"
)

// TestTrafficIsSummedAcrossProcesses: two processes count reads and
// writes of the same bucket; after both flush (one explicitly, one by
// Close) the catalog holds the sum, and a second flush adds nothing.
func TestTrafficIsSummedAcrossProcesses(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, testClusterConfig{Shards: 2})
	ctx := context.Background()
	other, err := Open(ctx, tc.Options)
	if err != nil {
		t.Fatal(err)
	}
	s1, s2 := tc.Store, NewStore(other, StoreOptions{})
	u, err := s1.CreateUser(ctx, NewUser{Email: "traffic@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := s1.User(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if _, err := s2.User(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
	}
	name := "x"
	if _, err := s2.UpdateUser(ctx, u.ID, UserChange{Name: &name}); err != nil {
		t.Fatal(err)
	}
	if err := tc.Cluster.FlushTraffic(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tc.Cluster.FlushTraffic(ctx); err != nil {
		t.Fatal(err)
	}
	other.Close() // flushes
	got, err := tc.Cluster.Traffic(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b := u.ID.Bucket()
	if len(got) != 1 || got[0].Bucket != b || got[0].Reads != 5 || got[0].Writes != 2 {
		t.Errorf("traffic: got %+v, want bucket %d with 5 reads and 2 writes summed over both processes", got, b)
	}
}
