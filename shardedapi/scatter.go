package shardedapi

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// GatherOptions tune a scatter-gather query.
type GatherOptions struct {
	// PerShardTimeout bounds each shard's query, so one slow shard cannot
	// hold up the answer. Default 2s.
	PerShardTimeout time.Duration
}

// ShardFailure is a shard that did not answer a scatter-gather query.
type ShardFailure struct {
	Shard string
	Err   error
}

// Gathered is the merged answer of a scatter-gather query.
type Gathered[T any] struct {
	// Items are every answering shard's items, in shard-name order; merge
	// or sort them as the query needs.
	Items []T
	// Partial is true when some shards did not answer: Items then lack
	// their rows. A partial result is never silent.
	Partial bool
	// Failures says which shards did not answer, and why.
	Failures []ShardFailure
}

// Gather runs query on every shard concurrently, each under
// opts.PerShardTimeout, and concatenates the answers. Shards that fail are
// listed in Failures and flag the result Partial; Gather returns an error
// only when no shard answered or ctx ended.
func Gather[T any](ctx context.Context, c *Cluster, opts GatherOptions, query func(ctx context.Context, s *Shard) ([]T, error)) (Gathered[T], error) {
	if opts.PerShardTimeout <= 0 {
		opts.PerShardTimeout = 2 * time.Second
	}
	shards := c.Shards()
	results := make([][]T, len(shards))
	errs := make([]error, len(shards))
	var wg sync.WaitGroup
	for i, s := range shards {
		wg.Go(func() {
			sctx, cancel := context.WithTimeout(ctx, opts.PerShardTimeout)
			defer cancel()
			items, err := query(sctx, s)
			if err != nil && ctx.Err() == nil {
				// The caller's ctx is live, so a deadline here is the shard
				// being slow, which counts as unavailable.
				err = s.Err(ctx, "scatter query", err)
			}
			results[i], errs[i] = items, err
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return Gathered[T]{}, fmt.Errorf("scatter query: %w", err)
	}
	var g Gathered[T]
	for i, s := range shards {
		if errs[i] != nil {
			g.Failures = append(g.Failures, ShardFailure{Shard: s.Name(), Err: errs[i]})
			continue
		}
		g.Items = append(g.Items, results[i]...)
	}
	g.Partial = len(g.Failures) > 0
	if len(g.Failures) == len(shards) {
		errs := make([]error, len(g.Failures))
		for i, f := range g.Failures {
			errs[i] = f.Err
		}
		return g, fmt.Errorf("scatter query: no shard answered: %w", errors.Join(errs...))
	}
	return g, nil
}
