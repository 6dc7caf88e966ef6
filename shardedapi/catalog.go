package shardedapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5"
)

// normalize fills defaults and checks a layout against the configured
// shards, returning the layout Bootstrap writes.
func (l Layout) normalize(shards []ShardConfig) (Layout, error) {
	if l.Buckets == 0 {
		l.Buckets = DefaultBuckets
	}
	if l.Buckets < 1 || l.Buckets > MaxBuckets {
		return l, fmt.Errorf("bootstrap: Layout.Buckets is %d: want 1..%d", l.Buckets, MaxBuckets)
	}
	configured := map[string]bool{}
	for _, s := range shards {
		configured[s.Name] = true
	}
	if len(l.Regions) == 0 {
		r := Region{Buckets: l.Buckets}
		for _, s := range shards {
			r.Shards = append(r.Shards, s.Name)
		}
		l.Regions = []Region{r}
	}
	total := 0
	regionOf := map[string]string{}
	names := map[string]bool{}
	for _, r := range l.Regions {
		if names[r.Name] {
			return l, fmt.Errorf("bootstrap: region %q is listed twice", r.Name)
		}
		names[r.Name] = true
		if r.Buckets < 1 {
			return l, fmt.Errorf("bootstrap: region %q has %d buckets: want at least 1", r.Name, r.Buckets)
		}
		if len(r.Shards) == 0 {
			return l, fmt.Errorf("bootstrap: region %q has no shards", r.Name)
		}
		for _, s := range r.Shards {
			if !configured[s] {
				return l, fmt.Errorf("bootstrap: region %q names shard %q, which is not in Options.Shards", r.Name, s)
			}
			if other, dup := regionOf[s]; dup {
				return l, fmt.Errorf("bootstrap: shard %q is in regions %q and %q: a shard belongs to one region", s, other, r.Name)
			}
			regionOf[s] = r.Name
		}
		total += r.Buckets
	}
	if total != l.Buckets {
		return l, fmt.Errorf("bootstrap: regions own %d buckets in all, Layout.Buckets is %d: make them equal", total, l.Buckets)
	}
	switch l.Strategy {
	case StrategyHash:
		if len(l.Ranges) > 0 {
			return l, errors.New("bootstrap: Layout.Ranges is set but Strategy is hash: set Strategy to StrategyRange or drop the ranges")
		}
	case StrategyRange:
		first := l.firstBuckets()
		hasStart := map[string]bool{}
		for _, rule := range l.Ranges {
			start, ok := first[rule.Region]
			if !ok {
				return l, fmt.Errorf("bootstrap: range rule %q names unknown region %q", rule.From, rule.Region)
			}
			if rule.Bucket < start || rule.Bucket >= start+l.regionBuckets(rule.Region) {
				return l, fmt.Errorf("bootstrap: range rule %q of region %q sends keys to bucket %d, outside the region's buckets", rule.From, rule.Region, rule.Bucket)
			}
			if rule.From == "" {
				hasStart[rule.Region] = true
			}
		}
		for _, r := range l.Regions {
			if !hasStart[r.Name] {
				return l, fmt.Errorf("bootstrap: region %q has no range rule with From \"\": every key needs a rule", r.Name)
			}
		}
	default:
		return l, fmt.Errorf("bootstrap: unknown strategy %q: use StrategyHash or StrategyRange", l.Strategy)
	}
	return l, nil
}

func (l Layout) firstBuckets() map[string]int {
	first := map[string]int{}
	next := 0
	for _, r := range l.Regions {
		first[r.Name] = next
		next += r.Buckets
	}
	return first
}

func (l Layout) regionBuckets(name string) int {
	for _, r := range l.Regions {
		if r.Name == name {
			return r.Buckets
		}
	}
	return 0
}

// Bootstrap writes a dataset's layout, its shards and the first bucket map
// (each region's buckets spread round-robin over its shards) into the
// catalog, in one transaction. Run Migrate first. Running it again with
// the same layout does nothing; with a different one it is an error,
// because the layout decides every existing key's bucket.
func Bootstrap(ctx context.Context, opts Options, layout Layout) error {
	if err := opts.validate(); err != nil {
		return err
	}
	l, err := layout.normalize(opts.Shards)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, opts.CatalogDSN)
	if err != nil {
		return fmt.Errorf("bootstrap: connect to catalog: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.Serializable}, func(tx pgx.Tx) error {
		var have Layout
		err := tx.QueryRow(ctx, `SELECT buckets, strategy FROM layout WHERE id = 1`).Scan(&have.Buckets, &have.Strategy)
		if err == nil {
			if have.Buckets != l.Buckets || have.Strategy != l.Strategy {
				return fmt.Errorf("bootstrap: the catalog already holds a layout of %d buckets (strategy %q); refusing to change it to %d (%q), which would move existing keys",
					have.Buckets, have.Strategy, l.Buckets, l.Strategy)
			}
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("bootstrap: read layout: %w", err)
		}
		batch := &pgx.Batch{}
		batch.Queue(`INSERT INTO layout (id, buckets, strategy) VALUES (1, $1, $2)`, l.Buckets, string(l.Strategy))
		first := l.firstBuckets()
		for _, r := range l.Regions {
			batch.Queue(`INSERT INTO regions (name, first_bucket, buckets) VALUES ($1, $2, $3)`, r.Name, first[r.Name], r.Buckets)
			for _, s := range r.Shards {
				batch.Queue(`INSERT INTO shards (name, region) VALUES ($1, $2)`, s, r.Name)
			}
		}
		for _, rule := range l.Ranges {
			batch.Queue(`INSERT INTO range_rules (region, from_key, bucket) VALUES ($1, $2, $3)`, rule.Region, rule.From, rule.Bucket)
		}
		batch.Queue(`INSERT INTO map_versions (version, note) VALUES (1, 'bootstrap')`)
		var buckets []int32
		var shardNames []string
		for _, r := range l.Regions {
			for i := range r.Buckets {
				buckets = append(buckets, int32(first[r.Name]+i))
				shardNames = append(shardNames, r.Shards[i%len(r.Shards)])
			}
		}
		batch.Queue(`INSERT INTO bucket_map (version, bucket, shard) SELECT 1, b, s FROM unnest($1::int[], $2::text[]) AS m(b, s)`, buckets, shardNames)
		if err := tx.SendBatch(ctx, batch).Close(); err != nil {
			return fmt.Errorf("bootstrap: write catalog: %w", err)
		}
		return nil
	})
}

// Refresh reloads the bucket map, regions and directory from the catalog
// (one consistent snapshot) and switches routing to it. If the new map is
// invalid (a bucket without a shard, or a shard without a connection
// string) the error says why and the previous map stays in use.
func (c *Cluster) Refresh(ctx context.Context) error {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	var t *routingTable
	err := pgx.BeginTxFunc(ctx, c.catalog, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		t, err = c.loadTable(ctx, tx)
		return err
	})
	if err != nil {
		return err
	}
	if old := c.table.Load(); old != nil && old.buckets != t.buckets {
		return fmt.Errorf("refresh bucket map: the catalog's layout changed from %d to %d buckets under a running process: restart it", old.buckets, t.buckets)
	}
	c.table.Store(t)
	return nil
}

func (c *Cluster) loadTable(ctx context.Context, tx pgx.Tx) (*routingTable, error) {
	t := &routingTable{regions: map[string]regionRange{}, ranges: map[string][]RangeRule{}, directory: map[Key]int{}}
	err := tx.QueryRow(ctx, `SELECT buckets, strategy FROM layout WHERE id = 1`).Scan(&t.buckets, &t.strategy)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("load bucket map: %w: run shardedapi.Bootstrap once for this dataset", ErrNotBootstrapped)
	}
	if err != nil {
		return nil, fmt.Errorf("load bucket map: read layout: %w", err)
	}
	rows, _ := tx.Query(ctx, `SELECT name, first_bucket, buckets FROM regions`)
	var name string
	var rr regionRange
	if _, err := pgx.ForEachRow(rows, []any{&name, &rr.first, &rr.count}, func() error {
		t.regions[name] = rr
		return nil
	}); err != nil {
		return nil, fmt.Errorf("load bucket map: read regions: %w", err)
	}
	shardRegion := map[string]string{}
	var region string
	rows, _ = tx.Query(ctx, `SELECT name, region FROM shards`)
	if _, err := pgx.ForEachRow(rows, []any{&name, &region}, func() error {
		shardRegion[name] = region
		return nil
	}); err != nil {
		return nil, fmt.Errorf("load bucket map: read shards: %w", err)
	}
	var rule RangeRule
	rows, _ = tx.Query(ctx, `SELECT region, from_key, bucket FROM range_rules ORDER BY region, from_key COLLATE "C"`)
	if _, err := pgx.ForEachRow(rows, []any{&rule.Region, &rule.From, &rule.Bucket}, func() error {
		t.ranges[rule.Region] = append(t.ranges[rule.Region], rule)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("load bucket map: read range rules: %w", err)
	}
	for r := range t.ranges {
		slices.SortFunc(t.ranges[r], func(a, b RangeRule) int { return cmp.Compare(a.From, b.From) })
	}
	var k Key
	var bucket int
	rows, _ = tx.Query(ctx, `SELECT region, key, bucket FROM directory`)
	if _, err := pgx.ForEachRow(rows, []any{&k.Region, &k.ID, &bucket}, func() error {
		t.directory[k] = bucket
		return nil
	}); err != nil {
		return nil, fmt.Errorf("load bucket map: read directory: %w", err)
	}
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM map_versions`).Scan(&t.version); err != nil {
		return nil, fmt.Errorf("load bucket map: read version: %w", err)
	}
	t.shardOf = make([]*Shard, t.buckets)
	unknown := map[string]*UnknownShardError{}
	var shard string
	rows, _ = tx.Query(ctx, `SELECT bucket, shard FROM bucket_map WHERE version = $1 ORDER BY bucket`, t.version)
	if _, err := pgx.ForEachRow(rows, []any{&bucket, &shard}, func() error {
		if bucket < 0 || bucket >= t.buckets {
			return fmt.Errorf("bucket map version %d names bucket %d, outside the layout's %d buckets", t.version, bucket, t.buckets)
		}
		s, configured := c.shards[shard]
		_, cataloged := shardRegion[shard]
		if !configured || !cataloged {
			if unknown[shard] == nil {
				unknown[shard] = &UnknownShardError{Shard: shard, MapVersion: t.version}
			}
			unknown[shard].Buckets = append(unknown[shard].Buckets, bucket)
			return nil
		}
		if r := shardRegion[shard]; s.Region() != r {
			s.region.Store(&r)
		}
		t.shardOf[bucket] = s
		return nil
	}); err != nil {
		return nil, fmt.Errorf("load bucket map: %w", err)
	}
	if len(unknown) > 0 {
		var errs []error
		for _, name := range slices.Sorted(maps.Keys(unknown)) {
			errs = append(errs, unknown[name])
		}
		return nil, fmt.Errorf("load bucket map: %w", errors.Join(errs...))
	}
	for b, s := range t.shardOf {
		if s == nil {
			return nil, fmt.Errorf("load bucket map: version %d maps no shard for bucket %d: the map is incomplete", t.version, b)
		}
	}
	return t, nil
}

// AddShard registers a new shard in the catalog for a region, so buckets
// can be moved to it with MoveBuckets. Its connection string must already
// be in Options.Shards of every process (and its schema migrated).
func (c *Cluster) AddShard(ctx context.Context, name, region string) error {
	if c.shards[name] == nil {
		return fmt.Errorf("add shard %q: it is not in Options.Shards: configure its DSN first", name)
	}
	if _, ok := c.table.Load().regions[region]; !ok {
		return fmt.Errorf("add shard %q: unknown region %q", name, region)
	}
	if _, err := c.catalog.Exec(ctx, `INSERT INTO shards (name, region) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, name, region); err != nil {
		return fmt.Errorf("add shard %q: %w", name, err)
	}
	return c.Refresh(ctx)
}

// MoveBuckets writes a new version of the bucket map in which each bucket
// in moves belongs to the given shard, and switches this process to it
// (other processes follow within Options.RefreshInterval). It refuses a
// move to an unknown shard or across regions (data residency). It only
// switches the map and copies no rows: for a bucket that has rows, use
// MoveBucket, which copies them online and fences the old owner. It
// returns the new map version.
func (c *Cluster) MoveBuckets(ctx context.Context, moves map[int]string, note string) (int64, error) {
	var version int64
	err := pgx.BeginTxFunc(ctx, c.catalog, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var err error
		version, err = c.writeMap(ctx, tx, moves, note)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("move buckets: %w", err)
	}
	return version, c.Refresh(ctx)
}

// writeMap writes, in the caller's catalog transaction, the next map
// version with moves applied, checking shards and regions.
func (c *Cluster) writeMap(ctx context.Context, tx pgx.Tx, moves map[int]string, note string) (int64, error) {
	var version int64
	err := func() error {
		// Serialize map writers; readers are unaffected.
		if _, err := tx.Exec(ctx, `LOCK TABLE map_versions IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return err
		}
		t, err := c.loadTable(ctx, tx)
		if err != nil {
			return err
		}
		shardRegion := map[string]string{}
		rows, _ := tx.Query(ctx, `SELECT name, region FROM shards`)
		var name, region string
		if _, err := pgx.ForEachRow(rows, []any{&name, &region}, func() error {
			shardRegion[name] = region
			return nil
		}); err != nil {
			return err
		}
		var buckets []int32
		var targets []string
		for _, b := range slices.Sorted(maps.Keys(moves)) {
			to := moves[b]
			if b < 0 || b >= t.buckets {
				return fmt.Errorf("bucket %d is outside the layout's %d buckets", b, t.buckets)
			}
			toRegion, ok := shardRegion[to]
			if !ok || c.shards[to] == nil {
				return &UnknownShardError{Shard: to, MapVersion: t.version + 1, Buckets: []int{b}}
			}
			if from := t.shardOf[b].Region(); from != toRegion {
				return fmt.Errorf("bucket %d belongs to region %q; shard %q is in region %q: buckets never leave their region", b, from, to, toRegion)
			}
			buckets = append(buckets, int32(b))
			targets = append(targets, to)
		}
		version = t.version + 1
		batch := &pgx.Batch{}
		batch.Queue(`INSERT INTO map_versions (version, note) VALUES ($1, $2)`, version, note)
		batch.Queue(`INSERT INTO bucket_map (version, bucket, shard) SELECT $1, bucket, shard FROM bucket_map WHERE version = $2`, version, t.version)
		batch.Queue(`UPDATE bucket_map AS m SET shard = mv.s FROM unnest($2::int[], $3::text[]) AS mv(b, s) WHERE m.version = $1 AND m.bucket = mv.b`, version, buckets, targets)
		return tx.SendBatch(ctx, batch).Close()
	}()
	return version, err
}

// Assign adds a directory entry: key k (say, a big tenant) goes to bucket b
// instead of where its strategy would send it, so the tenant can later be
// moved alone by moving that bucket. Make the entry before the key has
// rows: the bucket of existing rows does not change. Re-assigning a key to
// another bucket is refused.
func (c *Cluster) Assign(ctx context.Context, k Key, b int) error {
	if err := k.validate(); err != nil {
		return err
	}
	t := c.table.Load()
	rr, ok := t.regions[k.Region]
	if !ok {
		return fmt.Errorf("assign %q: %w: unknown region %q", k.String(), ErrInvalidKey, k.Region)
	}
	if b < rr.first || b >= rr.first+rr.count {
		return fmt.Errorf("assign %q to bucket %d: region %q owns buckets %d..%d", k.String(), b, k.Region, rr.first, rr.first+rr.count-1)
	}
	var have int
	err := c.catalog.QueryRow(ctx, `INSERT INTO directory (region, key, bucket) VALUES ($1, $2, $3)
		ON CONFLICT (region, key) DO UPDATE SET bucket = directory.bucket RETURNING bucket`, k.Region, k.ID, b).Scan(&have)
	if err != nil {
		return fmt.Errorf("assign %q: %w", k.String(), err)
	}
	if have != b {
		return fmt.Errorf("assign %q to bucket %d: it is already assigned to bucket %d, and its rows live there", k.String(), b, have)
	}
	return c.Refresh(ctx)
}
