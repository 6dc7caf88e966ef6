package shardedapi

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// ErrTooParallel means a source shard's server has fewer free replication
// slots or WAL senders than the moves RunMoves would run on it at once.
// Nothing was moved.
var ErrTooParallel = errors.New("shardedapi: not enough free replication slots or WAL senders on the source for this many parallel moves")

// RunMovesOptions configure RunMoves. The zero value is the default.
type RunMovesOptions struct {
	// Move configures each move (MoveBucket's options). Its Progress
	// may be called from several goroutines at once.
	Move MoveOptions
	// Parallel is how many moves run at once. Default 1 (one after the
	// other). Each running move holds a replication slot and a WAL
	// sender on its source: keep it below the source's
	// max_replication_slots and max_wal_senders minus what else uses them.
	Parallel int
	// Started is called as each move starts (i counts from 1 of n).
	// Default nil. It may be called from several goroutines at once.
	Started func(i, n, bucket int, to string)
	// Finished is called as each move ends, failed or not. Default nil.
	// It may be called from several goroutines at once.
	Finished func(MoveResult)
}

// MoveResult is the outcome of one move of RunMoves.
type MoveResult struct {
	Bucket  int
	Target  string
	Move    Move  // the catalog row as the move left it
	Err     error // nil when the move is done
	Elapsed time.Duration
}

// RunMoves moves each bucket of moves (bucket → target shard) with
// MoveBucket, up to opts.Parallel at a time, in bucket order. Every move
// is its own resumable, leased move: a failed one does not stop the
// others, and a rerun resumes the unfinished ones. It returns every
// move's result in bucket order, and an error joining the failures
// (nil if all are done).
//
// Before moving anything it checks that each source shard's server has
// enough free replication slots and WAL senders for the moves that would
// run on it at once, and refuses with ErrTooParallel if not. Cancelling
// ctx starts no further move and leaves the running ones resumable.
func (c *Cluster) RunMoves(ctx context.Context, moves map[int]string, opts RunMovesOptions) ([]MoveResult, error) {
	parallel := max(opts.Parallel, 1)
	buckets := slices.Sorted(maps.Keys(moves))
	if err := c.checkMoveCapacity(ctx, buckets, parallel); err != nil {
		return nil, err
	}
	results := make([]MoveResult, len(buckets))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(parallel, len(buckets)) {
		wg.Go(func() {
			for i := range next {
				b := buckets[i]
				to := moves[b]
				if opts.Started != nil {
					opts.Started(i+1, len(buckets), b, to)
				}
				start := time.Now()
				m, err := c.MoveBucket(ctx, b, to, opts.Move)
				results[i] = MoveResult{Bucket: b, Target: to, Move: m, Err: err, Elapsed: time.Since(start)}
				if opts.Finished != nil {
					opts.Finished(results[i])
				}
			}
		})
	}
	var cancelled error
feed:
	for i := range buckets {
		select {
		case next <- i:
		case <-ctx.Done():
			cancelled = ctx.Err()
			for j := i; j < len(buckets); j++ {
				results[j] = MoveResult{Bucket: buckets[j], Target: moves[buckets[j]], Err: fmt.Errorf("move bucket %d to %q: not started: %w", buckets[j], moves[buckets[j]], cancelled)}
			}
			break feed
		}
	}
	close(next)
	wg.Wait()
	var errs []error
	for _, r := range results {
		if r.Err != nil && (cancelled == nil || !errors.Is(r.Err, cancelled)) {
			errs = append(errs, r.Err)
		}
	}
	if cancelled != nil {
		errs = append(errs, fmt.Errorf("run moves: cancelled; rerun to resume: %w", cancelled))
	}
	return results, errors.Join(errs...)
}

// checkMoveCapacity refuses a parallelism that a source server cannot
// hold: each running move needs one replication slot and one WAL sender
// there. Sources on the same server are checked one by one, a cheap
// approximation that catches the common mistake (K above the settings).
func (c *Cluster) checkMoveCapacity(ctx context.Context, buckets []int, parallel int) error {
	perSource := map[*Shard]int{}
	for _, b := range buckets {
		sh, err := c.ShardOfBucket(b)
		if err != nil {
			// MoveBucket reports the bad bucket as that move's failure.
			continue
		}
		perSource[sh]++
	}
	for sh, n := range perSource {
		need := min(n, parallel)
		if need <= 1 {
			continue
		}
		var slots, senders int
		err := sh.pool.QueryRow(ctx, `SELECT
			current_setting('max_replication_slots')::int - (SELECT count(*) FROM pg_replication_slots),
			current_setting('max_wal_senders')::int - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender')`).Scan(&slots, &senders)
		if err != nil {
			return sh.Err(ctx, "check free replication slots", err)
		}
		if free := min(slots, senders); need > free {
			return fmt.Errorf("%w: shard %q would run %d moves at once but its server has %d free replication slot(s) and %d free WAL sender(s); lower --max-parallel to %d or raise max_replication_slots / max_wal_senders",
				ErrTooParallel, sh.Name(), need, slots, senders, max(free, 1))
		}
	}
	return nil
}
