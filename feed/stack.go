package feed

import (
	"context"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/models"
)

// StackDeploymentObjects implements graph.Feed: one stack's deployment
// objects for dashboards; with after, the objects committed since first.
// It shows what stack(id) { deploymentObjects } shows the scope
// (models.StackView), object by object: a stack the scope does not see is
// NOT_FOUND, and objects it stops seeing (the stack deleted, the agent
// deactivated or untargeted) are not sent.
func (h *Hub) StackDeploymentObjects(ctx context.Context, scope models.Scope, stackID uuid.UUID, after *int64) (<-chan *models.DeploymentObject, Stream, error) {
	if after != nil && *after < 0 {
		return nil, nil, models.Invalid("after", "after must not be negative")
	}
	view := &models.StackView{Scope: viewScope(scope), StackID: stackID}
	if err := view.Check(ctx, h.db); err != nil {
		return nil, nil, h.internal("feed.StackDeploymentObjects", err)
	}
	pid, hash, err := models.PrincipalKey(ctx, h.db, scope)
	if err != nil {
		return nil, nil, h.internal("feed.StackDeploymentObjects", err)
	}
	s := &objSub{out: newOut[*models.DeploymentObject](h.opts.BufferSize), view: view}
	r := &registration{sub: s, after: after, res: make(chan regResult, 1)}
	if err := h.subscribe(ctx, r); err != nil {
		return nil, nil, err
	}
	if pid != uuid.Nil {
		h.mu.Lock()
		if !s.done {
			s.watch = &watch{scope: scope, id: pid, pakHash: hash, close: func() { h.endLocked(s) }}
			h.addWatchLocked(s.watch)
		}
		h.mu.Unlock()
	}
	return s.ch, s, nil
}

// viewScope is the scope a view is keyed by: who the principal is, without
// what authentication read along (a generator's rate limit).
func viewScope(s models.Scope) models.Scope {
	return models.Scope{Role: s.Role, GeneratorID: s.GeneratorID, AgentID: s.AgentID}
}

// registerStackLocked answers a dashboard registration: replay (after, wm]
// if after is given, then live above wm.
func (h *Hub) registerStackLocked(r *registration, wm int64) {
	s := r.sub
	if s.done {
		return
	}
	m := h.stacks[s.view.StackID]
	if m == nil {
		m = map[*objSub]struct{}{}
		h.stacks[s.view.StackID] = m
	}
	m[s] = struct{}{}
	s.ready = true
	st := feedStart{cursor: wm}
	if r.after != nil {
		if *r.after < wm {
			st.from, st.to = *r.after, wm
		}
		st.cursor = max(*r.after, wm)
	}
	r.answer(regResult{start: st})
}
