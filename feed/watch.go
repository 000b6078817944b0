package feed

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/models"
)

// watch ties a dashboard subscription (stack objects, agent events) made by
// a generator or an agent to the key it was made with: when that principal's
// key is rotated, or the principal is deleted (or a generator deactivated),
// the subscription closes. Agent feeds are tied to their agent by agentState.
type watch struct {
	scope   models.Scope
	id      uuid.UUID // the generator or agent
	pakHash string
	close   func() // with h.mu held
}

// keyOf returns the principal's current key hash, or Unauthenticated when it
// is gone. Admins are not watched (id uuid.Nil).
func (h *Hub) keyOf(ctx context.Context, scope models.Scope) (uuid.UUID, string, error) {
	var q string
	var id uuid.UUID
	switch scope.Role {
	case models.RoleAgent:
		id, q = scope.AgentID, "SELECT coalesce(pak_hash, '') FROM agents WHERE id = ? AND deleted_at IS NULL"
	case models.RoleGenerator:
		id, q = scope.GeneratorID, "SELECT coalesce(pak_hash, '') FROM generators WHERE id = ? AND deleted_at IS NULL AND is_active"
	default:
		return uuid.Nil, "", nil
	}
	var hash string
	if err := h.db.NewRaw(q, id).Scan(ctx, &hash); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return uuid.Nil, "", unauthenticated
		}
		return uuid.Nil, "", h.internal("feed.keyOf", err)
	}
	return id, hash, nil
}

func (h *Hub) addWatchLocked(w *watch) {
	m := h.watches[w.id]
	if m == nil {
		m = map[*watch]struct{}{}
		h.watches[w.id] = m
	}
	m[w] = struct{}{}
}

func (h *Hub) removeWatchLocked(w *watch) {
	if w == nil {
		return
	}
	if m := h.watches[w.id]; m != nil {
		delete(m, w)
		if len(m) == 0 {
			delete(h.watches, w.id)
		}
	}
}

type keyRow struct {
	ID      uuid.UUID `bun:"id"`
	PakHash string    `bun:"pak_hash"`
	Live    bool      `bun:"live"`
}

// processWatches closes the dashboard subscriptions of principals whose key
// changed or who are gone.
func (h *Hub) processWatches(ctx context.Context) error {
	h.mu.Lock()
	if len(h.watchDirty) == 0 {
		h.mu.Unlock()
		return nil
	}
	var ids []uuid.UUID
	for id := range h.watchDirty {
		if _, ok := h.watches[id]; ok {
			ids = append(ids, id)
		}
	}
	h.watchDirty = map[uuid.UUID]struct{}{}
	h.mu.Unlock()
	if len(ids) == 0 {
		return nil
	}
	var rows []keyRow
	err := h.db.NewRaw(`SELECT id, coalesce(pak_hash, '') AS pak_hash, deleted_at IS NULL AS live FROM agents WHERE id = ANY(?::uuid[])
		UNION ALL
		SELECT id, coalesce(pak_hash, ''), deleted_at IS NULL AND is_active FROM generators WHERE id = ANY(?::uuid[])`,
		uuidArray(ids), uuidArray(ids)).Scan(ctx, &rows)
	if err != nil {
		h.mu.Lock()
		for _, id := range ids {
			h.watchDirty[id] = struct{}{}
		}
		h.mu.Unlock()
		return fmt.Errorf("feed: checking keys: %w", err)
	}
	current := map[uuid.UUID]keyRow{}
	for _, r := range rows {
		current[r.ID] = r
	}
	var revoked []models.Scope
	h.mu.Lock()
	for _, id := range ids {
		r, ok := current[id]
		for w := range h.watches[id] {
			if !ok || !r.Live || r.PakHash != w.pakHash {
				w.close()
				revoked = append(revoked, w.scope)
			}
		}
	}
	h.mu.Unlock()
	if h.opts.OnRevoke != nil {
		done := map[models.Scope]bool{}
		for _, s := range revoked {
			if !done[s] {
				done[s] = true
				h.opts.OnRevoke(s)
			}
		}
	}
	return nil
}
