package auth

import (
	"math"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"github.com/brokkr/brokkr/models"
)

// RateLimiter is a token bucket per generator (DESIGN §4): a bucket holds a
// minute's worth of requests and refills at rate_limit_per_minute (or the
// server default) per minute. Buckets live in this process: with several
// replicas each enforces the limit on the traffic it sees.
type RateLimiter struct {
	// DefaultPerMinute applies to generators without their own limit;
	// zero or less disables limiting for them.
	DefaultPerMinute int

	mu      sync.Mutex
	buckets map[uuid.UUID]*bucket
}

type bucket struct {
	perMinute int
	lim       *rate.Limiter
}

// NewRateLimiter makes a limiter with the given default.
func NewRateLimiter(defaultPerMinute int) *RateLimiter {
	return &RateLimiter{DefaultPerMinute: defaultPerMinute, buckets: map[uuid.UUID]*bucket{}}
}

// Allow takes one token for the caller. Only generators are limited. When
// the bucket is empty it returns a RATE_LIMITED error whose RetryAfter says
// when the next token arrives.
func (l *RateLimiter) Allow(scope models.Scope) error {
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
	lim := l.limiter(scope.GeneratorID, perMinute)
	now := time.Now()
	res := lim.ReserveN(now, 1)
	if delay := res.DelayFrom(now); delay > 0 {
		res.CancelAt(now)
		return &models.Error{
			Kind:       models.KindRateLimited,
			Message:    "rate limit exceeded: retry later",
			RetryAfter: math.Max(1, math.Ceil(delay.Seconds())),
		}
	}
	return nil
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
