package shardedapi

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/jackc/pgx/v5"
)

// HotspotOptions tune Hotspots.
type HotspotOptions struct {
	// Tables are the sharded tables whose rows are counted; each needs an
	// integer "bucket" column (Store's users and DocumentStore's documents have one). Default
	// []string{"users", "documents"}.
	Tables []string
	// GatherOptions bound each shard's counting query.
	GatherOptions GatherOptions
}

// BucketLoad is one bucket's line of the hotspot report.
type BucketLoad struct {
	Bucket int
	Shard  string // owner under the report's map version
	Rows   int64  // rows in the bucket (on any shard)
	Reads  int64  // reads counted by this process since Open
	Writes int64  // committed writes counted by this process since Open
}

// ShardLoad is one shard's line of the hotspot report.
type ShardLoad struct {
	Shard   string
	Region  string
	Buckets int   // buckets it owns
	Rows    int64 // rows stored on it
	Reads   int64 // reads of its buckets (this process)
	Writes  int64 // writes to its buckets (this process)
	// Stray are rows on this shard whose bucket another shard owns: left
	// over from a bucket move (copy done, cleanup not yet).
	Stray int64
	// Queries are the SQL statements this process sent to the shard since
	// Open (all tables, including the report's own counting queries).
	Queries int64
}

// HotspotReport is the seed's Hotspot Test: how rows, reads and writes
// spread over buckets and shards, to spot a hot key or an unbalanced map.
type HotspotReport struct {
	MapVersion int64
	Tables     []string
	Buckets    []BucketLoad // every bucket, by bucket number
	Shards     []ShardLoad  // every shard, by name
	// Partial is true when some shards could not be counted (see Failures);
	// their rows are missing from the report.
	Partial  bool
	Failures []ShardFailure
}

// Hotspots builds the hotspot report: rows per bucket counted on every
// shard (scatter-gather), reads and writes per bucket from this process's
// counters (CountRead, CountWrite).
func (c *Cluster) Hotspots(ctx context.Context, opts HotspotOptions) (HotspotReport, error) {
	if len(opts.Tables) == 0 {
		opts.Tables = []string{"users", "documents"}
	}
	t := c.table.Load()
	type count struct {
		shard  string
		bucket int
		rows   int64
	}
	g, err := Gather(ctx, c, opts.GatherOptions, func(ctx context.Context, s *Shard) ([]count, error) {
		var out []count
		for _, table := range opts.Tables {
			rows, err := s.pool.Query(ctx, `SELECT bucket, count(*) FROM `+pgx.Identifier{table}.Sanitize()+` GROUP BY bucket`)
			if err != nil {
				return nil, fmt.Errorf("count rows of %s: %w", table, err)
			}
			var cnt count
			cnt.shard = s.name
			if _, err := pgx.ForEachRow(rows, []any{&cnt.bucket, &cnt.rows}, func() error {
				out = append(out, cnt)
				return nil
			}); err != nil {
				return nil, fmt.Errorf("count rows of %s: %w", table, err)
			}
		}
		return out, nil
	})
	if err != nil {
		return HotspotReport{}, fmt.Errorf("hotspot report: %w", err)
	}
	r := HotspotReport{MapVersion: t.version, Tables: opts.Tables, Partial: g.Partial, Failures: g.Failures}
	r.Buckets = make([]BucketLoad, t.buckets)
	shardIdx := map[string]int{}
	for i, s := range c.Shards() {
		shardIdx[s.name] = i
		r.Shards = append(r.Shards, ShardLoad{Shard: s.name, Region: s.Region(), Queries: s.tracer.count.Load()})
	}
	for b := range r.Buckets {
		owner := t.shardOf[b].name
		bl := &r.Buckets[b]
		bl.Bucket, bl.Shard = b, owner
		bl.Reads, bl.Writes = c.stats.reads[b].Load(), c.stats.writes[b].Load()
		sl := &r.Shards[shardIdx[owner]]
		sl.Buckets++
		sl.Reads += bl.Reads
		sl.Writes += bl.Writes
	}
	for _, cnt := range g.Items {
		sl := &r.Shards[shardIdx[cnt.shard]]
		sl.Rows += cnt.rows
		if cnt.bucket < 0 || cnt.bucket >= t.buckets || t.shardOf[cnt.bucket].name != cnt.shard {
			sl.Stray += cnt.rows
		}
		if cnt.bucket >= 0 && cnt.bucket < t.buckets {
			r.Buckets[cnt.bucket].Rows += cnt.rows
		}
	}
	return r, nil
}

// Skew is max/mean rows per shard (1.0 is perfectly even; 0 with no rows).
func (r HotspotReport) Skew() float64 {
	var total, most int64
	for _, s := range r.Shards {
		total += s.Rows
		most = max(most, s.Rows)
	}
	if total == 0 || len(r.Shards) == 0 {
		return 0
	}
	return float64(most) / (float64(total) / float64(len(r.Shards)))
}

// HottestBuckets are the n buckets with the most reads+writes (ties: most
// rows), hottest first.
func (r HotspotReport) HottestBuckets(n int) []BucketLoad {
	b := slices.Clone(r.Buckets)
	slices.SortStableFunc(b, func(x, y BucketLoad) int {
		if c := cmp.Compare(y.Reads+y.Writes, x.Reads+x.Writes); c != 0 {
			return c
		}
		return cmp.Compare(y.Rows, x.Rows)
	})
	return b[:min(n, len(b))]
}

// WriteText prints the report as aligned tables: per shard, then the top
// hottest buckets. It is what `assetctl` prints.
func (r HotspotReport) WriteText(w io.Writer, top int) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "bucket map version %d, tables %v, row skew (max/mean per shard) %.3f\n", r.MapVersion, r.Tables, r.Skew())
	fmt.Fprintln(tw, "shard\tregion\tbuckets\trows\treads\twrites\tstray\tsql queries\t")
	for _, s := range r.Shards {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t\n", s.Shard, s.Region, s.Buckets, s.Rows, s.Reads, s.Writes, s.Stray, s.Queries)
	}
	fmt.Fprintf(tw, "\nhottest %d buckets\n", top)
	fmt.Fprintln(tw, "bucket\tshard\trows\treads\twrites\t")
	for _, b := range r.HottestBuckets(top) {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t\n", b.Bucket, b.Shard, b.Rows, b.Reads, b.Writes)
	}
	for _, f := range r.Failures {
		fmt.Fprintf(tw, "PARTIAL: shard %s not counted: %v\n", f.Shard, f.Err)
	}
	return tw.Flush()
}
