package auth

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"github.com/brokkr/brokkr/models"
)

// RateLimiter is a token bucket per generator (DESIGN §4): a bucket holds a
// minute's worth of tokens and refills at rate_limit_per_minute (or the
// server default) per minute. A request spends a token per mutation it
// runs (at least one): what a request does is weighed, not that it came.
// Buckets live in this process: with several replicas each enforces the
// limit on the traffic it sees.
type RateLimiter struct {
	// DefaultPerMinute applies to generators without their own limit;
	// zero or less disables limiting for them.
	DefaultPerMinute int

	mu      sync.Mutex
	buckets map[uuid.UUID]*bucket

	refused atomic.Uint64 // requests refused RATE_LIMITED (Refusals)
}

type bucket struct {
	perMinute int
	lim       *rate.Limiter
}

// NewRateLimiter makes a limiter with the given default.
func NewRateLimiter(defaultPerMinute int) *RateLimiter {
	return &RateLimiter{DefaultPerMinute: defaultPerMinute, buckets: map[uuid.UUID]*bucket{}}
}

// Allow takes one token for the caller: Spend(scope, 1).
func (l *RateLimiter) Allow(scope models.Scope) error { return l.Spend(scope, 1) }

// Spend takes n tokens for one request of the caller, all or none. Only
// generators are limited. When fewer than n are left it takes none and
// returns a RATE_LIMITED error whose RetryAfter says when n will be there;
// a request that needs more than the bucket ever holds is BAD_USER_INPUT
// (waiting cannot help: it must be split).
func (l *RateLimiter) Spend(scope models.Scope, n int) error {
	if l == nil || scope.Role != models.RoleGenerator {
		return nil
	}
	perMinute := l.DefaultPerMinute
	if scope.RateLimitPerMinute != nil {
		perMinute = int(*scope.RateLimitPerMinute)
	}
	if perMinute <= 0 {
		return nil
	}
	n = max(n, 1)
	if n > perMinute {
		return models.Invalid("", "this request runs %d mutations, more than this generator may run in a minute (%d): send them in smaller requests", n, perMinute)
	}
	lim := l.limiter(scope.GeneratorID, perMinute)
	now := time.Now()
	res := lim.ReserveN(now, n)
	if delay := res.DelayFrom(now); delay > 0 {
		res.CancelAt(now)
		l.refused.Add(1)
		msg := "rate limit exceeded: retry later"
		if n > 1 {
			msg = fmt.Sprintf("rate limit exceeded: this request runs %d mutations, more than are left; none ran: retry later", n)
		}
		return &models.Error{
			Kind:       models.KindRateLimited,
			Message:    msg,
			RetryAfter: math.Max(1, math.Ceil(delay.Seconds())),
		}
	}
	return nil
}

// Refusals is the number of requests refused RATE_LIMITED so far.
func (l *RateLimiter) Refusals() uint64 {
	if l == nil {
		return 0
	}
	return l.refused.Load()
}

// limiter returns the generator's bucket, replacing it when its limit changed.
func (l *RateLimiter) limiter(id uuid.UUID, perMinute int) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		l.buckets = map[uuid.UUID]*bucket{}
	}
	b := l.buckets[id]
	if b == nil || b.perMinute != perMinute {
		b = &bucket{perMinute: perMinute, lim: rate.NewLimiter(rate.Limit(float64(perMinute)/60), perMinute)}
		l.buckets[id] = b
	}
	return b.lim
}
