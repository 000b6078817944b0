package auth

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/brokkr/brokkr/models"
)

// Activity maintains generators' last_active_at (DESIGN §4). It writes at
// most once per Interval per generator and process, so the write path of a
// busy generator does not pay an UPDATE per request; the request that does
// write it waits for it (Guard calls Touch before the operation).
type Activity struct {
	DB       bun.IDB
	Logger   *slog.Logger
	Interval time.Duration // default 10s

	mu   sync.Mutex
	last map[uuid.UUID]time.Time
}

// Touch records that the caller was active; only generators are tracked.
func (a *Activity) Touch(ctx context.Context, scope models.Scope) {
	if a == nil || scope.Role != models.RoleGenerator {
		return
	}
	interval := a.Interval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	now := time.Now()
	a.mu.Lock()
	if a.last == nil {
		a.last = map[uuid.UUID]time.Time{}
	}
	if t, ok := a.last[scope.GeneratorID]; ok && now.Sub(t) < interval {
		a.mu.Unlock()
		return
	}
	a.last[scope.GeneratorID] = now
	a.mu.Unlock()
	if err := models.TouchGeneratorActivity(context.WithoutCancel(ctx), a.DB, scope.GeneratorID); err != nil {
		logger := a.Logger
		if logger == nil {
			logger = slog.Default()
		}
		logger.WarnContext(ctx, "auth: last_active_at not updated", "generator", scope.GeneratorID, "err", err)
	}
}
