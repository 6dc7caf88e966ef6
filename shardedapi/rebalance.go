package shardedapi

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
)

// PlanRebalance proposes the fewest bucket moves that spread each region's
// buckets evenly (within one) over the region's shards in the catalog — for
// example after AddShard. It moves buckets only off shards above their
// share and only onto shards below it, so most buckets stay where they are.
// Make the moves with MoveBucket (`assetctl shards rebalance`).
func (c *Cluster) PlanRebalance(ctx context.Context) (map[int]string, error) {
	rows, err := c.catalog.Query(ctx, `SELECT name, region FROM shards ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("plan rebalance: read shards: %w", err)
	}
	regionShards := map[string][]string{}
	var name, region string
	for rows.Next() {
		if err := rows.Scan(&name, &region); err != nil {
			rows.Close()
			return nil, fmt.Errorf("plan rebalance: read shards: %w", err)
		}
		regionShards[region] = append(regionShards[region], name)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("plan rebalance: read shards: %w", err)
	}
	t := c.table.Load()
	moves := map[int]string{}
	for region, rr := range t.regions {
		shards := regionShards[region]
		if len(shards) == 0 {
			continue
		}
		owned := map[string][]int{}
		for b := rr.first; b < rr.first+rr.count; b++ {
			owned[t.shardOf[b].name] = append(owned[t.shardOf[b].name], b)
		}
		// Shares: count/len each, the first count%len shards (by current
		// size, largest first) keeping one extra, so big shards shed less.
		order := slices.Clone(shards)
		slices.SortStableFunc(order, func(a, b string) int { return len(owned[b]) - len(owned[a]) })
		share := map[string]int{}
		for i, s := range order {
			share[s] = rr.count / len(shards)
			if i < rr.count%len(shards) {
				share[s]++
			}
		}
		var spare []int
		for _, s := range order {
			if extra := len(owned[s]) - share[s]; extra > 0 {
				spare = append(spare, owned[s][len(owned[s])-extra:]...)
			}
		}
		// Buckets on shards no longer in the region's list also move.
		for s, bs := range owned {
			if _, ok := share[s]; !ok {
				spare = append(spare, bs...)
			}
		}
		slices.Sort(spare)
		for _, s := range order {
			for need := share[s] - len(owned[s]); need > 0 && len(spare) > 0; need-- {
				moves[spare[0]] = s
				spare = spare[1:]
			}
		}
	}
	return moves, nil
}

// PlanRebalanceByLoad proposes bucket moves that even out a per-bucket
// load (rows, bytes or traffic: load(b) for bucket b) within each region,
// greedily like Citus's rebalancer: while the most loaded shard is more
// than threshold (0.1 = 10%; 0 means 0.1) above the region's mean, move
// to the least loaded shard the largest bucket of the most loaded shard
// that has one which still leaves the pair better balanced. Buckets with
// no load never move; a bucket hotter than the mean stays a hotspot (split
// its keys with Cluster.Assign instead).
func (c *Cluster) PlanRebalanceByLoad(ctx context.Context, load func(bucket int) int64, threshold float64) (map[int]string, error) {
	if threshold <= 0 {
		threshold = 0.1
	}
	rows, err := c.catalog.Query(ctx, `SELECT name, region FROM shards ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("plan rebalance: read shards: %w", err)
	}
	regionShards := map[string][]string{}
	var name, region string
	if _, err := pgx.ForEachRow(rows, []any{&name, &region}, func() error {
		regionShards[region] = append(regionShards[region], name)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("plan rebalance: read shards: %w", err)
	}
	t := c.table.Load()
	moves := map[int]string{}
	for region, rr := range t.regions {
		shards := regionShards[region]
		if len(shards) < 2 {
			continue
		}
		sum := map[string]int64{}
		owned := map[string][]int{}
		var total int64
		for _, s := range shards {
			sum[s] = 0
		}
		for b := rr.first; b < rr.first+rr.count; b++ {
			s := t.shardOf[b].name
			l := load(b)
			sum[s] += l
			owned[s] = append(owned[s], b)
			total += l
		}
		mean := float64(total) / float64(len(shards))
		for range rr.count {
			order := slices.Clone(shards)
			slices.SortStableFunc(order, func(a, b string) int { return cmp.Compare(sum[b], sum[a]) })
			least := order[len(order)-1]
			if float64(sum[order[0]]) <= mean*(1+threshold) {
				break
			}
			// From the most loaded shard that has one, move the largest
			// bucket that still leaves the pair better balanced (l < gap).
			best, bestLoad, from := -1, int64(0), ""
			for _, src := range order[:len(order)-1] {
				gap := sum[src] - sum[least]
				for _, b := range owned[src] {
					if l := load(b); l > 0 && l < gap && l > bestLoad {
						best, bestLoad, from = b, l, src
					}
				}
				if best >= 0 {
					break
				}
			}
			if best < 0 {
				break
			}
			moves[best] = least
			sum[from] -= bestLoad
			sum[least] += bestLoad
			owned[from] = slices.DeleteFunc(owned[from], func(b int) bool { return b == best })
			owned[least] = append(owned[least], best)
		}
	}
	return moves, nil
}
