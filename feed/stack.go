package feed

import (
	"context"
	"database/sql"
	"errors"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/models"
)

// StackDeploymentObjects implements graph.Feed: one stack's deployment
// objects for dashboards; with after, the objects committed since first.
// Admins see any stack; a generator only its own live stacks; an agent only
// the stacks it targets while it is ACTIVE. Anything else is NOT_FOUND.
func (h *Hub) StackDeploymentObjects(ctx context.Context, scope models.Scope, stackID uuid.UUID, after *int64) (<-chan *models.DeploymentObject, error) {
	if after != nil && *after < 0 {
		return nil, models.Invalid("after", "after must not be negative")
	}
	var q string
	var args []any
	switch scope.Role {
	case models.RoleAdmin:
		q, args = "SELECT true FROM stacks WHERE id = ?", []any{stackID}
	case models.RoleGenerator:
		q = "SELECT true FROM stacks WHERE id = ? AND generator_id = ? AND deleted_at IS NULL"
		args = []any{stackID, scope.GeneratorID}
	case models.RoleAgent:
		q = `SELECT true FROM agent_targets t JOIN agents a ON a.id = t.agent_id
		      WHERE t.stack_id = ? AND t.agent_id = ? AND a.status = 'ACTIVE' AND a.deleted_at IS NULL`
		args = []any{stackID, scope.AgentID}
	default:
		return nil, models.Forbidden("unknown role")
	}
	var ok bool
	if err := h.db.NewRaw(q, args...).Scan(ctx, &ok); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, models.NotFound("stack")
		}
		return nil, h.internal("feed.StackDeploymentObjects", err)
	}
	pid, hash, err := h.keyOf(ctx, scope)
	if err != nil {
		return nil, err
	}
	s := &objSub{ch: make(chan *models.DeploymentObject, h.opts.BufferSize), stackID: stackID, waker: wakerFor(ctx)}
	r := &registration{sub: s, stackID: stackID, after: after, res: make(chan regResult, 1)}
	if err := h.subscribe(ctx, r); err != nil {
		return nil, err
	}
	if pid != uuid.Nil {
		h.mu.Lock()
		if !s.done {
			s.watch = &watch{scope: scope, id: pid, pakHash: hash, close: func() { h.endLocked(s) }}
			h.addWatchLocked(s.watch)
		}
		h.mu.Unlock()
	}
	s.waker.take()
	return s.ch, nil
}

// registerStackLocked answers a dashboard registration: replay (after, wm]
// if after is given, then live above wm.
func (h *Hub) registerStackLocked(r *registration, wm int64) {
	s := r.sub
	m := h.stacks[r.stackID]
	if m == nil {
		m = map[*objSub]struct{}{}
		h.stacks[r.stackID] = m
	}
	m[s] = struct{}{}
	s.ready = true
	res := regResult{cursor: wm}
	if r.after != nil {
		if *r.after < wm {
			res.stacks, res.from, res.to = []uuid.UUID{r.stackID}, *r.after, wm
		}
		res.cursor = max(*r.after, wm)
	}
	r.res <- res
}
