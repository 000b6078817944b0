package feed

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/models"
)

// watch ties a dashboard subscription (stack objects, agent events) made by
// a generator or an agent to the key it was made with: when that principal's
// key no longer authenticates (rotated, the principal deleted, a generator
// deactivated: models.PrincipalKeys), the subscription closes. Agent feeds
// are tied to their agent by its agentState.
type watch struct {
	scope   models.Scope
	id      uuid.UUID // the generator or agent
	pakHash string
	close   func() // with h.mu held
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

// processWatches closes the dashboard subscriptions of principals whose key
// changed or who are gone.
func (h *Hub) processWatches(ctx context.Context) error {
	h.mu.Lock()
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
	kctx, cancel := context.WithTimeout(ctx, dbTimeout)
	keys, err := models.PrincipalKeys(kctx, h.db, ids)
	cancel()
	if err != nil {
		h.mu.Lock()
		for _, id := range ids {
			h.watchDirty[id] = struct{}{}
		}
		h.mu.Unlock()
		return fmt.Errorf("feed: checking keys: %w", err)
	}
	revoked := map[models.Scope]bool{}
	h.mu.Lock()
	for _, id := range ids {
		hash, ok := keys[id]
		for w := range h.watches[id] {
			if !ok || hash != w.pakHash {
				w.close()
				revoked[viewScope(w.scope)] = true
			}
		}
	}
	h.mu.Unlock()
	if h.opts.OnRevoke != nil {
		for s := range revoked {
			h.opts.OnRevoke(s)
		}
	}
	return nil
}
