package shardedapi

import (
	"context"
	"fmt"
	"slices"
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
