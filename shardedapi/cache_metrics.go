package shardedapi

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// cacheMetrics are the cache's Prometheus series, all named
// shardedapi_cache_* with a constant label cache=<CacheOptions.Name>.
// Children are resolved once here so the hot path is an atomic add.
type cacheMetrics struct {
	hitL1, hitRedis                                     prometheus.Counter
	missAbsent, missExpired, missMalformed, missVersion prometheus.Counter
	missUnavailable                                     prometheus.Counter
	coalesced                                           prometheus.Counter
	loadOK, loadNotFound, loadError                     prometheus.Counter
	lockWaits, lockWaitTimeouts                         prometheus.Counter
	earlyRefreshes                                      prometheus.Counter
	staleServes                                         prometheus.Counter
	storeOK, storeLeaseLost                             prometheus.Counter
	errRedis, errMalformed, errTooLarge, errLoad        prometheus.Counter
	invApplied, invQueued, invDropped, invReplayed      prometheus.Counter
	pendingInvalidations                                prometheus.Gauge
	breakerState                                        prometheus.Gauge
	loadSeconds                                         prometheus.Histogram

	reg        prometheus.Registerer
	collectors []prometheus.Collector
}

func newCacheMetrics(reg prometheus.Registerer, name string) (*cacheMetrics, error) {
	labels := prometheus.Labels{"cache": name}
	counterVec := func(n, help string, label string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "shardedapi", Subsystem: "cache", Name: n, Help: help, ConstLabels: labels,
		}, []string{label})
	}
	counter := func(n, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "shardedapi", Subsystem: "cache", Name: n, Help: help, ConstLabels: labels,
		})
	}
	gauge := func(n, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "shardedapi", Subsystem: "cache", Name: n, Help: help, ConstLabels: labels,
		})
	}
	hits := counterVec("hits_total", "Reads answered from a cache tier (l1 or redis), negative entries included.", "tier")
	misses := counterVec("misses_total", "Reads that found no usable entry, by reason.", "reason")
	loads := counterVec("loads_total", "Calls of the loader (database queries), by result.", "result")
	stores := counterVec("stores_total", "Attempts to store a loaded entry, by result (lease_lost: an invalidation ran during the load).", "result")
	errs := counterVec("errors_total", "Errors, by kind.", "kind")
	invs := counterVec("invalidations_total", "Invalidations, by result.", "result")
	m := &cacheMetrics{
		hitL1:                hits.WithLabelValues("l1"),
		hitRedis:             hits.WithLabelValues("redis"),
		missAbsent:           misses.WithLabelValues("absent"),
		missExpired:          misses.WithLabelValues("expired"),
		missMalformed:        misses.WithLabelValues("malformed"),
		missVersion:          misses.WithLabelValues("version"),
		missUnavailable:      misses.WithLabelValues("redis_unavailable"),
		coalesced:            counter("coalesced_total", "Reads that shared another read's in-process load (single-flight)."),
		loadOK:               loads.WithLabelValues("ok"),
		loadNotFound:         loads.WithLabelValues("not_found"),
		loadError:            loads.WithLabelValues("error"),
		lockWaits:            counter("lock_waits_total", "Loads that waited for another process holding the key's Redis lock."),
		lockWaitTimeouts:     counter("lock_wait_timeouts_total", "Waits for another process's load that ended after LockWait, so this process loaded without storing."),
		earlyRefreshes:       counter("early_refreshes_total", "Background refreshes started by probabilistic early expiration (XFetch)."),
		staleServes:          counter("stale_serves_total", "Reads answered with an expired entry while another loader worked or the loader failed."),
		storeOK:              stores.WithLabelValues("stored"),
		storeLeaseLost:       stores.WithLabelValues("lease_lost"),
		errRedis:             errs.WithLabelValues("redis"),
		errMalformed:         errs.WithLabelValues("malformed"),
		errTooLarge:          errs.WithLabelValues("too_large"),
		errLoad:              errs.WithLabelValues("load"),
		invApplied:           invs.WithLabelValues("applied"),
		invQueued:            invs.WithLabelValues("queued"),
		invDropped:           invs.WithLabelValues("dropped"),
		invReplayed:          invs.WithLabelValues("replayed"),
		pendingInvalidations: gauge("pending_invalidations", "Invalidations queued while Redis is unreachable, replayed when it returns."),
		breakerState:         gauge("redis_breaker_state", "State of the Redis circuit breaker: 0 closed, 1 half-open, 2 open."),
		loadSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "shardedapi", Subsystem: "cache", Name: "load_seconds", ConstLabels: labels,
			Help:    "Duration of loader calls.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8),
		}),
	}
	if reg == nil {
		return m, nil
	}
	m.reg = reg
	for _, c := range []prometheus.Collector{hits, misses, loads, stores, errs, invs,
		m.coalesced, m.lockWaits, m.lockWaitTimeouts, m.earlyRefreshes, m.staleServes,
		m.pendingInvalidations, m.breakerState, m.loadSeconds} {
		if err := reg.Register(c); err != nil {
			m.unregister()
			if are := (prometheus.AlreadyRegisteredError{}); errors.As(err, &are) {
				return nil, fmt.Errorf("register cache metrics: %w (give each Cache sharing a Registerer its own CacheOptions.Name)", err)
			}
			return nil, fmt.Errorf("register cache metrics: %w", err)
		}
		m.collectors = append(m.collectors, c)
	}
	return m, nil
}

// unregister removes the series from the Registerer, so a Cache of the same
// name can be built again after Close.
func (m *cacheMetrics) unregister() {
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
	m.collectors = nil
}
