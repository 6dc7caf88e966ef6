package shardedapi

import (
	"context"
	"errors"
	"net"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
)

// newRedisBreaker builds the circuit breaker every Redis operation of c goes
// through: BreakerFailures consecutive failures open it for BreakerOpenFor,
// then a single probe decides whether it closes again.
func newRedisBreaker(c *Cache) *gobreaker.TwoStepCircuitBreaker[struct{}] {
	return gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "redis",
		MaxRequests: 1,
		Timeout:     c.opts.BreakerOpenFor,
		ReadyToTrip: func(n gobreaker.Counts) bool {
			return n.ConsecutiveFailures >= c.opts.BreakerFailures
		},
		IsSuccessful: redisAnswered,
		IsExcluded: func(err error) bool {
			// A caller that gave up says nothing about Redis, nor does a
			// deadline that passed while waiting for a pooled connection
			// (a busy pool, not a dead server: a server that does not
			// answer fails with a network timeout instead).
			var ne net.Error
			return errors.Is(err, context.Canceled) ||
				(errors.Is(err, context.DeadlineExceeded) && !errors.As(err, &ne))
		},
		OnStateChange: func(_ string, from, to gobreaker.State) {
			// Runs under the breaker's lock: no Redis calls here.
			c.m.breakerState.Set(float64(to))
			c.l1.setRedisDown(to != gobreaker.StateClosed)
			switch to {
			case gobreaker.StateOpen:
				c.log.Warn("redis unreachable: circuit breaker open, reads go to the loader", "for", c.opts.BreakerOpenFor)
			case gobreaker.StateClosed:
				c.log.Info("redis reachable again: circuit breaker closed")
				c.pending.wake()
			}
		},
	})
}

// redisAnswered reports whether err (from a Redis operation) shows a live
// server: no error, a nil reply, or an ordinary error reply.
func redisAnswered(err error) bool {
	if err == nil || errors.Is(err, redis.Nil) {
		return true
	}
	var reply redis.Error
	if !errors.As(err, &reply) {
		return false // network error, timeout, closed client
	}
	for _, p := range []string{"LOADING", "CLUSTERDOWN", "MASTERDOWN", "TRYAGAIN", "READONLY"} {
		if redis.HasErrorPrefix(err, p) {
			return false
		}
	}
	return true
}
