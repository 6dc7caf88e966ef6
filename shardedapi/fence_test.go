package shardedapi

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
)

// handMove moves a user's bucket from its shard to another the way the
// mover's cutover does, by hand: copy the row, fence the source, flip the
// map with another process's Cluster (so tc.Cluster keeps a stale map).
func handMove(t *testing.T, tc *testCluster, u User, fenceTx func(tx pgx.Tx)) (from, to string) {
	t.Helper()
	ctx := context.Background()
	loc, _ := tc.Cluster.LocateID(u.ID)
	from = loc.Shard.Name()
	for _, s := range tc.Cluster.Shards() {
		if s.Name() != from {
			to = s.Name()
			break
		}
	}
	src, dst := tc.Cluster.Shard(from).Pool(), tc.Cluster.Shard(to).Pool()
	tx, err := src.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1::int, $2::int)`, fenceLockClass, loc.Bucket); err != nil {
		t.Fatalf("take the fence exclusively: %v", err)
	}
	if fenceTx != nil {
		fenceTx(tx)
	}
	var row User
	row, err = scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, int64(u.ID)))
	if err != nil {
		t.Fatalf("read source row: %v", err)
	}
	if _, err := dst.Exec(ctx, `INSERT INTO users (id, region, email, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		int64(row.ID), row.Region, row.Email, row.Name, row.CreatedAt, row.UpdatedAt); err != nil {
		t.Fatalf("copy row: %v", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO shardedapi_bucket_owner (bucket, state) VALUES ($1, 'moved')`, loc.Bucket); err != nil {
		t.Fatalf("mark source moved: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	other, err := Open(ctx, tc.Options)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.MoveBuckets(ctx, map[int]string{loc.Bucket: to}, "hand move"); err != nil {
		t.Fatalf("flip map: %v", err)
	}
	return from, to
}

func TestFenceSendsStaleWritesToTheNewOwner(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, testClusterConfig{Shards: 2})
	ctx := context.Background()
	u, err := tc.Store.CreateUser(ctx, NewUser{Email: "stale@example.com", Name: "before"})
	if err != nil {
		t.Fatal(err)
	}
	from, to := handMove(t, tc, u, nil)
	if v := tc.Cluster.MapVersion(); v != 1 {
		t.Fatalf("the writer's map: got version %d, want the stale 1", v)
	}
	name := "after"
	if _, err := tc.Store.UpdateUser(ctx, u.ID, UserChange{Name: &name}); err != nil {
		t.Fatalf("UpdateUser with a stale map: got %v, want it retried on the new owner", err)
	}
	var srcName, dstName string
	if err := tc.Cluster.Shard(from).Pool().QueryRow(ctx, `SELECT name FROM users WHERE id = $1`, int64(u.ID)).Scan(&srcName); err != nil {
		t.Fatal(err)
	}
	if err := tc.Cluster.Shard(to).Pool().QueryRow(ctx, `SELECT name FROM users WHERE id = $1`, int64(u.ID)).Scan(&dstName); err != nil {
		t.Fatal(err)
	}
	if srcName != "before" || dstName != "after" {
		t.Errorf("rows: source %q, target %q; want the source untouched (%q) and the target updated (%q)", srcName, dstName, "before", "after")
	}
	if tc.Cluster.FenceRetries() == 0 {
		t.Errorf("FenceRetries: got 0, want the stale write to have been refused at least once")
	}
	if got, err := tc.Store.User(ctx, u.ID); err != nil || got.Name != "after" {
		t.Errorf("User after the move: got %+v, %v, want name %q", got, err, "after")
	}
	if err := tc.Store.DeleteUser(ctx, u.ID); err != nil {
		t.Errorf("DeleteUser after the move: %v", err)
	}
}

func TestFenceHoldsWritersDuringCutover(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, testClusterConfig{Shards: 2})
	ctx := context.Background()
	u, err := tc.Store.CreateUser(ctx, NewUser{Email: "wait@example.com", Name: "before"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	var to string
	_, to = handMove(t, tc, u, func(pgx.Tx) {
		// The fence is held exclusively: a writer started now must wait
		// for the cutover and then land on the new owner.
		go func() {
			name := "during"
			_, err := tc.Store.UpdateUser(ctx, u.ID, UserChange{Name: &name})
			done <- err
		}()
		waitForLockWaiter(t, tc.Cluster.Shards()[0], tc.Cluster.Shards()[1])
	})
	if err := <-done; err != nil {
		t.Fatalf("UpdateUser held by the fence: got %v, want success on the new owner", err)
	}
	var name string
	if err := tc.Cluster.Shard(to).Pool().QueryRow(ctx, `SELECT name FROM users WHERE id = $1`, int64(u.ID)).Scan(&name); err != nil || name != "during" {
		t.Errorf("target row: got %q, %v, want %q", name, err, "during")
	}
}

// waitForLockWaiter waits until some session on one of the shards waits
// for an advisory lock.
func waitForLockWaiter(t *testing.T, shards ...*Shard) {
	t.Helper()
	for {
		for _, s := range shards {
			var n int
			if err := s.Pool().QueryRow(context.Background(), `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				return
			}
		}
	}
}

func TestBucketMovedErrorIsTyped(t *testing.T) {
	var err error = &BucketMovedError{Bucket: 3, Shard: "s0", State: "moved"}
	var bm *BucketMovedError
	if !errors.Is(err, ErrBucketMoved) || !errors.As(err, &bm) || bm.Bucket != 3 {
		t.Errorf("got %v, want errors.Is ErrBucketMoved and As *BucketMovedError", err)
	}
}
