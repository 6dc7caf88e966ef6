package shardedapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// Shard is one shard database and its connection pool.
type Shard struct {
	name   string
	region atomic.Pointer[string] // set from the catalog by Refresh
	pool   *pgxpool.Pool
	tracer *tracer
}

// Name is the shard's name in the catalog.
func (s *Shard) Name() string { return s.name }

// Region is the data-residency region the shard belongs to ("" by default).
func (s *Shard) Region() string {
	if r := s.region.Load(); r != nil {
		return *r
	}
	return ""
}

// Pool is the shard's pgx pool, for queries of the caller's own tables.
// Wrap errors from it with (*Shard).Err so callers can tell an unreachable
// shard apart.
func (s *Shard) Pool() *pgxpool.Pool { return s.pool }

// Err wraps an error from this shard in a *ShardError for op (e.g. "get
// user"), marking it unavailable when the shard could not be reached. It
// returns nil for nil, and passes through ErrNotFound and the caller's own
// context cancellation unchanged.
func (s *Shard) Err(ctx context.Context, op string, err error) error {
	if err == nil || errors.Is(err, ErrNotFound) {
		return err
	}
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%s on shard %q: %w", op, s.name, err)
	}
	return &ShardError{Shard: s.name, Op: op, Unavailable: unreachable(err), Err: err}
}

// unreachable reports whether err means the server could not be reached
// or dropped us (as opposed to an SQL error on a live server).
func unreachable(err error) bool {
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &connectErr), errors.As(err, &netErr),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, context.DeadlineExceeded), pgconn.Timeout(err):
		return true
	case errors.As(err, &pgErr):
		// Class 08: connection exception; 57P0x: the server is shutting
		// down, crashed or not yet accepting connections.
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57P")
	}
	// pgx reports a connection closed under a query as plain text.
	return strings.Contains(err.Error(), "conn closed") || strings.Contains(err.Error(), "closed pool")
}

// readRetry runs read, an idempotent read of this shard, and runs it once
// more when it failed on a dead pooled connection: one the server dropped
// while it sat idle (a restart, a failover, a proxy's idle timeout), which
// the pool only finds out about when a query is sent on it. After a restart
// every idle connection is as dead as that one, so the pool is reset first
// and the retry dials a fresh connection. Errors that say the server cannot
// be reached now (refused, timed out) are not retried: a retry would only
// wait again. Writes must not use this: a write may have been applied
// before the connection died.
func (s *Shard) readRetry(ctx context.Context, read func(ctx context.Context) error) error {
	err := read(ctx)
	if err == nil || ctx.Err() != nil || !deadConn(err) {
		return err
	}
	s.pool.Reset()
	s.tracer.retries.Inc()
	s.tracer.retriesN.Add(1)
	return read(ctx)
}

// deadConn reports whether err came from a connection that was open but
// turned out dead, as opposed to a server that cannot be reached at all.
func deadConn(err error) bool {
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) || errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) {
		return false
	}
	return unreachable(err)
}

// dbMetrics are the per-shard database metrics.
type dbMetrics struct {
	queries  *prometheus.CounterVec   // shard, outcome
	duration *prometheus.HistogramVec // shard
	acquires *prometheus.CounterVec   // shard, outcome
	retries  *prometheus.CounterVec   // shard

	reg        prometheus.Registerer
	collectors []prometheus.Collector
}

func newDBMetrics(reg prometheus.Registerer) (*dbMetrics, error) {
	m := &dbMetrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardedapi_db_queries_total",
			Help: "SQL statements sent to each shard (and the catalog), by outcome (ok or error).",
		}, []string{"shard", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shardedapi_db_query_duration_seconds",
			Help:    "Latency of SQL statements per shard.",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2.5, 12),
		}, []string{"shard"}),
		acquires: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardedapi_db_connection_acquires_total",
			Help: "Connection acquisitions from each shard's pool, by outcome (ok or error: an error usually means the shard is down).",
		}, []string{"shard", "outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardedapi_db_read_retries_total",
			Help: "Idempotent reads retried on a fresh connection after a pooled connection turned out dead (e.g. after the shard's server restarted).",
		}, []string{"shard"}),
	}
	if reg == nil {
		return m, nil
	}
	m.reg = reg
	for _, c := range []prometheus.Collector{m.queries, m.duration, m.acquires, m.retries} {
		if err := reg.Register(c); err != nil {
			m.unregister()
			if are := (prometheus.AlreadyRegisteredError{}); errors.As(err, &are) {
				return nil, fmt.Errorf("register shardedapi_db_* metrics: %w (another open Cluster registered them on this Registerer: Close it first, or give each Cluster its own Registerer: a separate prometheus.Registry, or prometheus.WrapRegistererWithPrefix(name+\"_\", reg))", err)
			}
			return nil, fmt.Errorf("register shardedapi_db_* metrics: %w", err)
		}
		m.collectors = append(m.collectors, c)
	}
	return m, nil
}

// unregister removes the series from the Registerer, so that a Cluster can
// be opened on it again after Close.
func (m *dbMetrics) unregister() {
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
	m.collectors = nil
}

// tracer feeds dbMetrics from pgx's query and pool-acquire hooks.
type tracer struct {
	shard    string
	count    atomic.Int64          // statements sent, for the hotspot report
	queries  [2]prometheus.Counter // ok, error
	acquires [2]prometheus.Counter
	duration prometheus.Observer
	retries  prometheus.Counter
	retriesN atomic.Int64 // retries, readable without a registry
}

type traceStartKey struct{}

func newTracer(m *dbMetrics, shard string) *tracer {
	return &tracer{
		shard:    shard,
		queries:  [2]prometheus.Counter{m.queries.WithLabelValues(shard, "ok"), m.queries.WithLabelValues(shard, "error")},
		acquires: [2]prometheus.Counter{m.acquires.WithLabelValues(shard, "ok"), m.acquires.WithLabelValues(shard, "error")},
		duration: m.duration.WithLabelValues(shard),
		retries:  m.retries.WithLabelValues(shard),
	}
}

func (t *tracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, traceStartKey{}, time.Now())
}

func (t *tracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	if start, ok := ctx.Value(traceStartKey{}).(time.Time); ok {
		t.duration.Observe(time.Since(start).Seconds())
	}
	t.queries[outcome(data.Err)].Inc()
	t.count.Add(1)
}

func (t *tracer) TraceAcquireStart(ctx context.Context, _ *pgxpool.Pool, _ pgxpool.TraceAcquireStartData) context.Context {
	return ctx
}

func (t *tracer) TraceAcquireEnd(_ context.Context, _ *pgxpool.Pool, data pgxpool.TraceAcquireEndData) {
	t.acquires[outcome(data.Err)].Inc()
}

func outcome(err error) int {
	if err != nil {
		return 1
	}
	return 0
}

var (
	_ pgx.QueryTracer       = (*tracer)(nil)
	_ pgxpool.AcquireTracer = (*tracer)(nil)
)

// newPool makes a lazily connecting pool: a shard that is down at start
// does not stop the others from serving.
func newPool(ctx context.Context, name, dsn string, maxConns int32, tr *tracer) (*pgxpool.Pool, error) {
	what := "shard " + name
	if name == catalogName {
		what = name
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse connection string of %s: %w", what, err)
	}
	cfg.MaxConns = maxConns
	cfg.MinConns = 0
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	cfg.ConnConfig.Tracer = tr
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create pool for %s: %w", what, err)
	}
	return pool, nil
}
