package shardedapi

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/assetctl/assetctl/internal/testsvc"
)

// TestMoveKeepsCachesCoherent: two processes with their own Cache on one
// Redis read users of a bucket; the bucket moves; one
// process updates a user on the new owner. The other, whose map is still
// the old one, then serves the new value, never the old owner's: the
// write invalidated the key, and its reload, routed to the old owner, is
// refused by the read fence and follows the bucket.
func TestMoveKeepsCachesCoherent(t *testing.T) {
	t.Parallel()
	mc := newMoveCluster(t, 2, Layout{})
	ctx := context.Background()
	rdb, prefix := testsvc.Redis(t)
	const bucket = 21
	pa, pb := mc.open(t), mc.open(t)
	ca := newCacheForTest(t, rdb, CacheOptions{Prefix: prefix})
	cb := newCacheForTest(t, rdb, CacheOptions{Prefix: prefix})
	sa, sb := NewStore(pa, StoreOptions{Cache: ca}), NewStore(pb, StoreOptions{Cache: cb})
	ids := seedBucket(t, pa, bucket, 5, "cache-")
	for _, id := range ids {
		for _, s := range []*Store{sa, sb} {
			if _, err := s.User(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	from, _ := mc.c.ShardOfBucket(bucket)
	to := mc.otherShard(t, bucket)
	mover := newCacheForTest(t, rdb, CacheOptions{Prefix: prefix})
	// Stop the mover in cleanup, before the grace period deletes the old
	// rows from the source, where a stale reader could find them.
	stopCtx, cancel := context.WithCancel(ctx)
	_, err := mc.c.MoveBucket(stopCtx, bucket, to, MoveOptions{Grace: time.Hour, Cache: mover, hook: func(s string) error {
		if s == MoveCleanup {
			cancel()
			return context.Canceled
		}
		return nil
	}})
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("MoveBucket stopped in cleanup: %v", err)
	}
	if n := countRows(t, from, `SELECT count(*) FROM users WHERE bucket = $1`, bucket); n != len(ids) {
		t.Fatalf("old rows on the source during the grace period: got %d, want %d", n, len(ids))
	}
	if pa.MapVersion() != 1 || pb.MapVersion() != 1 {
		t.Fatalf("map versions %d, %d: want both processes still on 1", pa.MapVersion(), pb.MapVersion())
	}
	name := "after the move"
	if _, err := sb.UpdateUser(ctx, ids[0], UserChange{Name: &name}); err != nil {
		t.Fatalf("UpdateUser from a stale process: %v", err)
	}
	if pa.MapVersion() != 1 {
		t.Fatalf("process A refreshed its map on its own")
	}
	got, err := sa.User(ctx, ids[0])
	if err != nil || got.Name != name {
		t.Errorf("stale process reads the moved, updated user: got %q, %v, want %q", got.Name, err, name)
	}
	if got, err := sa.User(ctx, ids[1]); err != nil || got.Name != "seed" {
		t.Errorf("stale process reads an unchanged moved user: got %q, %v, want %q", got.Name, err, "seed")
	}
	// Finish the move without waiting out the hour.
	if _, err := mc.c.MoveBucket(ctx, bucket, to, MoveOptions{Grace: -1}); err != nil {
		t.Fatalf("finish the move: %v", err)
	}
	checkMoved(t, mc, bucket, from.Name(), to, ids)
}
