package shardedapi

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrBucketMoved means a shard refused a write (or read) of a bucket it
// no longer owns, or does not own yet: the process's bucket map is older
// than a bucket move. BucketTx and the stores refresh the map and retry
// on the new owner, so a caller sees it only when the move's cutover did
// not finish within Options.MoveWait. The errors.As target is
// *BucketMovedError.
var ErrBucketMoved = errors.New("shardedapi: bucket moved")

// BucketMovedError is a fence refusal: Shard holds bucket Bucket in State
// "moved" (it was the source of a finished cutover) or "incoming" (it is
// the target of a move not yet cut over).
type BucketMovedError struct {
	Bucket int
	Shard  string
	State  string
}

func (e *BucketMovedError) Error() string {
	return fmt.Sprintf("bucket %d on shard %q is %s: the bucket map in use is older than a bucket move", e.Bucket, e.Shard, e.State)
}

// Is makes errors.Is(err, ErrBucketMoved) true.
func (e *BucketMovedError) Is(target error) bool { return target == ErrBucketMoved }

// fenceLockClass is the first key of the per-bucket advisory locks (the
// second is the bucket): "SH", so it does not collide with an
// application's single-key advisory locks.
const fenceLockClass = 0x5348

// defaultMoveWait is Options.MoveWait's default: like vtgate's buffer
// window, long enough to ride out a cutover, short enough that a stalled
// mover surfaces as an error.
const defaultMoveWait = 10 * time.Second

// fence takes bucket's write fence in tx on sh: a shared per-bucket
// advisory lock (the mover takes it exclusively at cutover, so writers
// wait for the cutover instead of racing it), then the bucket's owner
// state. The two are separate statements on purpose: in READ COMMITTED
// each statement takes its snapshot when it starts, so the state is read
// after the lock is granted and sees a cutover that committed while this
// writer waited. They travel in one round trip.
func fence(ctx context.Context, tx pgx.Tx, sh *Shard, bucket int) error {
	b := &pgx.Batch{}
	b.Queue(`SELECT pg_advisory_xact_lock_shared($1::int, $2::int)`, fenceLockClass, bucket)
	b.Queue(`SELECT state FROM shardedapi_bucket_owner WHERE bucket = $1`, bucket)
	res := tx.SendBatch(ctx, b)
	defer res.Close()
	if _, err := res.Exec(); err != nil {
		return sh.Err(ctx, "take bucket fence", err)
	}
	var state string
	err := res.QueryRow().Scan(&state)
	switch {
	case errors.Is(err, pgx.ErrNoRows) || (err == nil && state == "owned"):
		return res.Close()
	case err != nil:
		return sh.Err(ctx, "read bucket owner", err)
	}
	return &BucketMovedError{Bucket: bucket, Shard: sh.name, State: state}
}

// BucketTx runs fn in a transaction on the shard that owns bucket, behind
// the bucket's write fence, and commits it. Every write of a sharded row
// goes through it (Store and DocumentStore do; so should the caller's own
// tables and saga steps): a shard that no longer owns the bucket refuses
// the transaction, and BucketTx then refreshes the bucket map and runs fn
// again on the new owner, waiting out a cutover in progress, for up to
// Options.MoveWait. fn may therefore run more than once and must not keep
// effects outside tx from an attempt that returned an error.
func (c *Cluster) BucketTx(ctx context.Context, bucket int, fn func(ctx context.Context, tx pgx.Tx, sh *Shard) error) error {
	return c.onBucket(ctx, bucket, func(ctx context.Context, sh *Shard) error {
		tx, err := sh.pool.Begin(ctx)
		if err != nil {
			return sh.Err(ctx, "begin transaction", err)
		}
		defer tx.Rollback(context.WithoutCancel(ctx))
		if err := fence(ctx, tx, sh, bucket); err != nil {
			return err
		}
		if err := fn(ctx, tx, sh); err != nil {
			return err
		}
		return sh.Err(ctx, "commit", tx.Commit(ctx))
	})
}

// onBucket runs op against bucket's owner and, while op fails with
// ErrBucketMoved, refreshes the map and runs it again (with a short
// backoff while the catalog still names the refusing shard: the cutover
// is between fencing the source and publishing the new map).
func (c *Cluster) onBucket(ctx context.Context, bucket int, op func(ctx context.Context, sh *Shard) error) error {
	deadline := time.Now().Add(c.moveWait)
	backoff := 2 * time.Millisecond
	for {
		t := c.table.Load()
		if bucket < 0 || bucket >= t.buckets {
			return fmt.Errorf("locate bucket %d: %w: outside this dataset's %d buckets", bucket, ErrInvalidID, t.buckets)
		}
		sh := t.shardOf[bucket]
		err := op(ctx, sh)
		if !errors.Is(err, ErrBucketMoved) {
			return err
		}
		c.fenceRetries.Add(1)
		if time.Now().After(deadline) {
			return fmt.Errorf("bucket %d: %w (waited %s for the move's cutover: check `assetctl shards status`)", bucket, err, c.moveWait)
		}
		if err := c.refreshIfOlder(ctx, t.version); err != nil {
			c.log.WarnContext(ctx, "refresh bucket map after a fence refusal", "bucket", bucket, "err", err)
		}
		if c.table.Load().shardOf[bucket] == sh {
			select {
			case <-ctx.Done():
				return fmt.Errorf("bucket %d: %w", bucket, ctx.Err())
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 20*time.Millisecond)
		}
	}
}

// refreshIfOlder refreshes the map unless another goroutine already
// loaded a version newer than seen, so a burst of fence refusals costs
// one catalog read, not one each.
func (c *Cluster) refreshIfOlder(ctx context.Context, seen int64) error {
	if c.table.Load().version > seen {
		return nil
	}
	c.fenceRefreshMu.Lock()
	defer c.fenceRefreshMu.Unlock()
	if c.table.Load().version > seen {
		return nil
	}
	return c.Refresh(ctx)
}

// FenceRetries is how many times this process ran a bucket operation
// again after a shard refused it for a moved bucket.
func (c *Cluster) FenceRetries() int64 { return c.fenceRetries.Load() }

// readFenceSQL is appended to the WHERE clause of a read by key: the row
// is visible only while this shard owns its bucket ($n is the bucket), so
// a process with a stale map neither serves nor caches a moved row from
// the old owner during the grace period before the old rows are deleted.
func readFenceSQL(param int) string {
	return fmt.Sprintf(` AND NOT EXISTS (SELECT 1 FROM shardedapi_bucket_owner o WHERE o.bucket = $%d AND o.state <> 'owned')`, param)
}

// missOrMoved tells a read that found no row apart from one the read
// fence hid: it returns a *BucketMovedError when sh does not own bucket,
// else nil (the row really is absent).
func missOrMoved(ctx context.Context, sh *Shard, bucket int) error {
	var state string
	err := sh.pool.QueryRow(ctx, `SELECT state FROM shardedapi_bucket_owner WHERE bucket = $1`, bucket).Scan(&state)
	switch {
	case errors.Is(err, pgx.ErrNoRows) || (err == nil && state == "owned"):
		return nil
	case err != nil:
		return sh.Err(ctx, "read bucket owner", err)
	}
	return &BucketMovedError{Bucket: bucket, Shard: sh.name, State: state}
}

// ownedRowsSQL is appended to the WHERE clause of a scan of table: it
// hides rows of buckets this shard no longer (or not yet) owns, which a
// move leaves on its source until the grace period ends and creates on
// its target before cutover.
func ownedRowsSQL(table string) string {
	return ` AND NOT EXISTS (SELECT 1 FROM shardedapi_bucket_owner o WHERE o.bucket = ` + table + `.bucket AND o.state <> 'owned')`
}
