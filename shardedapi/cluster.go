package shardedapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// ShardConfig names a shard and says how to reach it.
type ShardConfig struct {
	Name string // the shard's name in the catalog, e.g. "s0"
	DSN  string // a pgx connection string, e.g. "postgres://app@db1:5432/shard_0"
}

// Options configure Migrate, Bootstrap and Open. CatalogDSN and Shards are
// required; every other field's zero value is the default.
type Options struct {
	// CatalogDSN is the connection string of the catalog database, which
	// holds the layout, the versioned bucket → shard map, directory entries
	// and uniqueness claims.
	CatalogDSN string
	// Shards are every shard the catalog may name. A shard the catalog's map
	// uses but that is missing here is an *UnknownShardError.
	Shards []ShardConfig
	// MaxConnsPerShard caps each shard's pool. Default 10.
	MaxConnsPerShard int32
	// RefreshInterval is how often the bucket map and directory are reloaded
	// from the catalog, so a bucket move made by another process is picked
	// up. Default 15s; negative disables it (call Refresh yourself).
	RefreshInterval time.Duration
	// TrafficFlushInterval is how often this process adds its per-bucket
	// read and write counts to the catalog's totals, shared by every
	// process (Cluster.Traffic, `assetctl shards status`). Default 10s;
	// negative disables it (call FlushTraffic yourself).
	TrafficFlushInterval time.Duration
	// MoveWait bounds how long a read or write of a bucket that is being
	// moved waits for the cutover and retries on the new owner before it
	// returns an error wrapping ErrBucketMoved. Default 10s.
	MoveWait time.Duration
	// Logger receives the package's logs. Default: discard.
	Logger *slog.Logger
	// Registerer receives the per-shard database metrics
	// (shardedapi_db_*). One open Cluster per Registerer: a second Open on
	// the same one fails (give another Cluster its own Registry, or wrap
	// this one with prometheus.WrapRegistererWithPrefix); Close unregisters
	// them. Default: none registered.
	Registerer prometheus.Registerer
}

func (o Options) validate() error {
	if o.CatalogDSN == "" {
		return errors.New("open shardedapi: Options.CatalogDSN is empty: give the catalog database's connection string")
	}
	if len(o.Shards) == 0 {
		return errors.New("open shardedapi: Options.Shards is empty: give at least one shard")
	}
	seen := map[string]bool{catalogName: true}
	for i, s := range o.Shards {
		switch {
		case s.Name == "":
			return fmt.Errorf("open shardedapi: Options.Shards[%d] has no Name", i)
		case seen[s.Name]:
			return fmt.Errorf("open shardedapi: Options.Shards[%d]: shard name %q is used twice (or is reserved)", i, s.Name)
		case s.DSN == "":
			return fmt.Errorf("open shardedapi: Options.Shards[%d] (%q) has no DSN", i, s.Name)
		}
		seen[s.Name] = true
	}
	return nil
}

func (o Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o.Logger
}

// Cluster routes keys to shards and holds a pool per shard. It is safe for
// concurrent use; make one per process with Open and Close it at exit.
type Cluster struct {
	log     *slog.Logger
	catalog *pgxpool.Pool
	shards  map[string]*Shard
	names   []string // shard names, sorted
	table   atomic.Pointer[routingTable]
	stats   *bucketStats
	metrics *dbMetrics

	refreshMu sync.Mutex
	// fenceRefreshMu coalesces the map refreshes of fence refusals.
	fenceRefreshMu sync.Mutex
	fenceRetries   atomic.Int64
	flushMu        sync.Mutex
	flushed        [][2]int64 // per bucket: reads, writes already flushed
	moveWait       time.Duration
	dsn            map[string]string // shard name → DSN, for the mover's replication connections
	catalogDSN     string
	stop           chan struct{}
	closeOnce      sync.Once
	wg             sync.WaitGroup
}

// Open connects to the catalog, loads the bucket map, and checks that the
// catalog and every reachable shard have the schema this binary needs
// (a *SchemaLagError otherwise). Shard pools connect lazily, so a shard
// that is down at start fails only its own keys.
func Open(ctx context.Context, opts Options) (*Cluster, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.MaxConnsPerShard <= 0 {
		opts.MaxConnsPerShard = 10
	}
	if opts.RefreshInterval == 0 {
		opts.RefreshInterval = 15 * time.Second
	}
	m, err := newDBMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("open shardedapi: %w", err)
	}
	if opts.MoveWait <= 0 {
		opts.MoveWait = defaultMoveWait
	}
	c := &Cluster{log: opts.logger(), shards: map[string]*Shard{}, metrics: m, stop: make(chan struct{}),
		moveWait: opts.MoveWait, dsn: map[string]string{}, catalogDSN: opts.CatalogDSN}
	ok := false
	defer func() {
		if !ok {
			c.closePools()
			m.unregister()
		}
	}()
	if c.catalog, err = newPool(ctx, catalogName, opts.CatalogDSN, opts.MaxConnsPerShard, newTracer(m, catalogName)); err != nil {
		return nil, fmt.Errorf("open shardedapi: %w", err)
	}
	for _, s := range opts.Shards {
		tr := newTracer(m, s.Name)
		pool, err := newPool(ctx, s.Name, s.DSN, opts.MaxConnsPerShard, tr)
		if err != nil {
			return nil, fmt.Errorf("open shardedapi: %w", err)
		}
		c.shards[s.Name] = &Shard{name: s.Name, pool: pool, tracer: tr}
		c.names = append(c.names, s.Name)
		c.dsn[s.Name] = s.DSN
	}
	slices.Sort(c.names)

	if err := checkSchema(ctx, catalogName, c.catalog); err != nil {
		return nil, fmt.Errorf("open shardedapi: check catalog schema: %w", err)
	}
	if err := c.Refresh(ctx); err != nil {
		return nil, fmt.Errorf("open shardedapi: %w", err)
	}
	if err := c.checkShardSchemas(ctx); err != nil {
		return nil, fmt.Errorf("open shardedapi: %w", err)
	}
	c.stats = newBucketStats(c.table.Load().buckets)
	c.flushed = make([][2]int64, c.table.Load().buckets)
	if opts.RefreshInterval > 0 {
		// The loop outlives Open's ctx (keeping its values, not its
		// deadline) and ends at Close.
		bg := context.WithoutCancel(ctx)
		c.wg.Go(func() { c.refreshLoop(bg, opts.RefreshInterval) })
	}
	if opts.TrafficFlushInterval == 0 {
		opts.TrafficFlushInterval = defaultTrafficFlush
	}
	if opts.TrafficFlushInterval > 0 {
		bg := context.WithoutCancel(ctx)
		c.wg.Go(func() { c.trafficLoop(bg, opts.TrafficFlushInterval) })
	}
	ok = true
	return c, nil
}

// checkShardSchemas checks every reachable shard; an unreachable one is
// logged and left for its own keys to report.
func (c *Cluster) checkShardSchemas(ctx context.Context) error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for _, name := range c.names {
		s := c.shards[name]
		wg.Go(func() {
			err := checkSchema(ctx, name, s.pool)
			var lag *SchemaLagError
			switch {
			case err == nil:
			case errors.As(err, &lag):
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			case unreachable(err):
				c.log.WarnContext(ctx, "shard unreachable at open; its keys fail until it is back", "shard", name, "err", err)
			default:
				mu.Lock()
				errs = append(errs, s.Err(ctx, "check schema", err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (c *Cluster) refreshLoop(bg context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(bg, every)
			if err := c.Refresh(ctx); err != nil {
				c.log.WarnContext(ctx, "refresh bucket map; keeping the previous one", "err", err)
			}
			cancel()
		}
	}
}

// Close stops the background refresh and closes every pool. Closing twice
// is harmless.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		close(c.stop)
		c.wg.Wait()
		c.closePools()
		c.metrics.unregister()
	})
	return nil
}

func (c *Cluster) closePools() {
	if c.catalog != nil {
		c.catalog.Close()
	}
	for _, s := range c.shards {
		s.pool.Close()
	}
}

// Shards are the configured shards, sorted by name.
func (c *Cluster) Shards() []*Shard {
	out := make([]*Shard, len(c.names))
	for i, n := range c.names {
		out[i] = c.shards[n]
	}
	return out
}

// Shard returns the named shard, or nil.
func (c *Cluster) Shard(name string) *Shard { return c.shards[name] }

// Catalog is the catalog database's pool.
func (c *Cluster) Catalog() *pgxpool.Pool { return c.catalog }

// MapVersion is the version of the bucket map in use.
func (c *Cluster) MapVersion() int64 { return c.table.Load().version }

// Buckets is the dataset's number of virtual buckets.
func (c *Cluster) Buckets() int { return c.table.Load().buckets }
