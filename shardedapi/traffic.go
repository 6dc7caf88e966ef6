package shardedapi

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// defaultTrafficFlush is Options.TrafficFlushInterval's default.
const defaultTrafficFlush = 10 * time.Second

// BucketTraffic is one bucket's reads and writes summed over every
// process that flushed its counters to the catalog.
type BucketTraffic struct {
	Bucket int
	Reads  int64
	Writes int64
}

// FlushTraffic adds the reads and writes this process counted since its
// last flush (CountRead, CountWrite) to the catalog's per-bucket totals,
// which every process shares. Open's background loop calls it every
// Options.TrafficFlushInterval; Close flushes once more.
func (c *Cluster) FlushTraffic(ctx context.Context) error {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	var buckets []int32
	var reads, writes []int64
	for b := range c.stats.reads {
		r, w := c.stats.reads[b].Load(), c.stats.writes[b].Load()
		dr, dw := r-c.flushed[b][0], w-c.flushed[b][1]
		if dr == 0 && dw == 0 {
			continue
		}
		buckets = append(buckets, int32(b))
		reads = append(reads, dr)
		writes = append(writes, dw)
	}
	if len(buckets) == 0 {
		return nil
	}
	_, err := c.catalog.Exec(ctx, `INSERT INTO bucket_traffic AS t (bucket, reads, writes)
		SELECT * FROM unnest($1::int[], $2::bigint[], $3::bigint[])
		ON CONFLICT (bucket) DO UPDATE SET reads = t.reads + EXCLUDED.reads, writes = t.writes + EXCLUDED.writes, updated_at = now()`,
		buckets, reads, writes)
	if err != nil {
		return fmt.Errorf("flush bucket traffic: %w", err)
	}
	for i, b := range buckets {
		c.flushed[b][0] += reads[i]
		c.flushed[b][1] += writes[i]
	}
	return nil
}

// Traffic is every bucket's reads and writes summed over all processes
// (as flushed so far), by bucket; buckets never counted are absent.
func (c *Cluster) Traffic(ctx context.Context) ([]BucketTraffic, error) {
	rows, err := c.catalog.Query(ctx, `SELECT bucket, reads, writes FROM bucket_traffic ORDER BY bucket`)
	if err != nil {
		return nil, fmt.Errorf("read bucket traffic: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (BucketTraffic, error) {
		var t BucketTraffic
		err := r.Scan(&t.Bucket, &t.Reads, &t.Writes)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("read bucket traffic: %w", err)
	}
	return out, nil
}

func (c *Cluster) trafficLoop(bg context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			ctx, cancel := context.WithTimeout(bg, 5*time.Second)
			if err := c.FlushTraffic(ctx); err != nil {
				c.log.WarnContext(ctx, "flush bucket traffic at close", "err", err)
			}
			cancel()
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(bg, every)
			if err := c.FlushTraffic(ctx); err != nil {
				c.log.WarnContext(ctx, "flush bucket traffic; the counts stay for the next flush", "err", err)
			}
			cancel()
		}
	}
}
