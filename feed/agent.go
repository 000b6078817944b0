package feed

import (
	"context"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/models"
)

// agent is one agent with subscribers. Guarded by Hub.mu; state and pending
// are written by the pump only (so the pump reads them without the lock).
type agent struct {
	id       uuid.UUID
	state    agentState
	feeds    []*objSub       // agentDeploymentObjects subscriptions
	watchers []*targetSub    // agentTargetChanges subscriptions
	pending  []*registration // subscriptions waiting for the pump's answer
}

// targetSub is one agentTargetChanges subscription (live only).
type targetSub struct {
	out[*models.AgentTargetChange] // ch and its wake-ups (the Stream)
	agent                          *agent
	stop                           func() bool
	ready                          bool
	done                           bool
}

// AgentDeploymentObjects implements graph.Feed (DESIGN §5).
func (h *Hub) AgentDeploymentObjects(ctx context.Context, scope models.Scope, agentID uuid.UUID, after *int64) (<-chan *models.DeploymentObject, Stream, error) {
	id, err := models.FeedAgent(ctx, h.db, scope, agentID)
	if err != nil {
		return nil, nil, h.internal("feed.AgentDeploymentObjects", err)
	}
	if after != nil && *after < 0 {
		return nil, nil, models.Invalid("after", "after must not be negative")
	}
	s := &objSub{out: newOut[*models.DeploymentObject](h.opts.BufferSize)}
	r := &registration{sub: s, agentID: id, after: after, res: make(chan regResult, 1)}
	if err := h.subscribe(ctx, r); err != nil {
		return nil, nil, err
	}
	return s.ch, s, nil
}

// AgentTargetChanges implements graph.Feed: targets added to and removed from
// the agent from now on.
func (h *Hub) AgentTargetChanges(ctx context.Context, scope models.Scope, agentID uuid.UUID) (<-chan *models.AgentTargetChange, Stream, error) {
	id, err := models.FeedAgent(ctx, h.db, scope, agentID)
	if err != nil {
		return nil, nil, h.internal("feed.AgentTargetChanges", err)
	}
	t := &targetSub{out: newOut[*models.AgentTargetChange](h.opts.BufferSize)}
	r := &registration{tsub: t, agentID: id, res: make(chan regResult, 1)}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, nil, ErrClosed
	}
	h.regs = append(h.regs, r)
	t.end = func() {
		h.mu.Lock()
		h.closeTargetSubLocked(t)
		h.mu.Unlock()
	}
	t.stop = context.AfterFunc(ctx, t.end)
	h.mu.Unlock()
	h.wake()
	// Wait until the pump has loaded the agent's targets: changes committed
	// after this returns are reported.
	select {
	case res := <-r.res:
		if res.err != nil {
			return nil, nil, res.err
		}
	case <-ctx.Done():
		return nil, nil, models.Translate(ctx.Err(), "agent")
	}
	return t.ch, t, nil
}

func (h *Hub) closeTargetSubLocked(t *targetSub) {
	if t.done {
		return
	}
	t.done = true
	if t.stop != nil {
		t.stop()
	}
	if a := t.agent; a != nil {
		if i := slices.Index(a.watchers, t); i >= 0 {
			a.watchers = slices.Delete(a.watchers, i, i+1)
		}
		h.dropAgentIfIdleLocked(a)
	}
	t.close()
}

func (h *Hub) sendTargetChangeLocked(t *targetSub, c *models.AgentTargetChange) {
	if t.done || !t.ready {
		return
	}
	if !t.send(c) {
		h.logger.Info("feed: slow subscriber cut off", "kind", KindTargetChanges, "buffer", cap(t.ch))
		h.cutOffLocked(KindTargetChanges)
		h.closeTargetSubLocked(t)
	}
}

// dropAgentIfIdleLocked forgets an agent nobody subscribes to any more.
func (h *Hub) dropAgentIfIdleLocked(a *agent) {
	if len(a.feeds) > 0 || len(a.watchers) > 0 {
		return
	}
	h.forgetAgentLocked(a)
}

// forgetAgentLocked removes a from the hub and from the stack index.
func (h *Hub) forgetAgentLocked(a *agent) {
	if h.agents[a.id] != a {
		return
	}
	delete(h.agents, a.id)
	for st := range a.state.carried {
		h.unindexLocked(a, st)
	}
}

func (h *Hub) indexLocked(a *agent, stack uuid.UUID) {
	m := h.byStack[stack]
	if m == nil {
		m = map[*agent]struct{}{}
		h.byStack[stack] = m
	}
	m[a] = struct{}{}
}

func (h *Hub) unindexLocked(a *agent, stack uuid.UUID) {
	if m := h.byStack[stack]; m != nil {
		delete(m, a)
		if len(m) == 0 {
			delete(h.byStack, stack)
		}
	}
}

// markDirty asks the pump to reload an agent (a target or agent NOTIFY) and
// to check the key of a principal with dashboard subscriptions.
func (h *Hub) markDirty(ids ...uuid.UUID) {
	h.mu.Lock()
	for _, id := range ids {
		if _, ok := h.agents[id]; ok {
			h.dirty[id] = struct{}{}
		}
		if _, ok := h.watches[id]; ok {
			h.watchDirty[id] = struct{}{}
		}
	}
	h.mu.Unlock()
	h.wake()
}

// markResync asks the pump to reload every agent and check every watched
// key (the listener reconnected, or the periodic resync).
func (h *Hub) markResync() {
	h.mu.Lock()
	h.resync = true
	h.mu.Unlock()
	h.wake()
}

// stepped is one agent's step, waiting to be applied.
type stepped struct {
	a    *agent
	next agentState
	fx   agentEffects
}

// processAgents attaches new agent subscriptions, reloads the agents that
// changed (or have new subscriptions), runs each through step, and applies
// the effects: added targets deliver their stack's latest object, removed
// ones stop, activation delivers the desired state, deletion or key rotation
// closes the agent's subscriptions, new subscriptions are answered.
func (h *Hub) processAgents(ctx context.Context) error {
	work, wm := h.takeAgentWork()
	if len(work) == 0 {
		return nil
	}
	rows, latest, err := h.loadAgents(ctx, work, wm)
	if err != nil {
		h.markDirty(agentIDs(work)...)
		return err
	}
	now := time.Now()
	steps := make([]stepped, 0, len(work))
	for _, a := range work {
		c := agentChange{row: rows[a.id], latest: latest, wm: wm, now: now, feeds: pendingAfters(a)}
		next, fx := step(a.state, c)
		steps = append(steps, stepped{a, next, fx})
	}
	var out applied
	h.mu.Lock()
	for _, s := range steps {
		h.applyAgentLocked(s, wm, &out)
	}
	h.mu.Unlock()
	h.afterApply(ctx, out)
	return nil
}

// takeAgentWork answers dashboard registrations (they need only the
// watermark), attaches agent registrations to their agent (created if
// needed; answered by the step), and returns the agents to load: those with
// new subscriptions and those marked dirty (all of them on a resync).
func (h *Hub) takeAgentWork() ([]*agent, int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	regs := h.regs
	h.regs = nil
	ids := h.dirty
	h.dirty = map[uuid.UUID]struct{}{}
	if h.resync {
		for id := range h.agents {
			ids[id] = struct{}{}
		}
		for id := range h.watches {
			h.watchDirty[id] = struct{}{}
		}
		h.resync = false
	}
	for _, r := range regs {
		if r.isStack() {
			h.registerStackLocked(r, h.wm)
		} else if !r.done() {
			h.attachLocked(r)
			ids[r.agentID] = struct{}{}
		}
	}
	var work []*agent
	for id := range ids {
		if a := h.agents[id]; a != nil {
			work = append(work, a)
		}
	}
	return work, h.wm
}

// attachLocked adds an agent registration to its agent (not ready yet).
func (h *Hub) attachLocked(r *registration) {
	a := h.agents[r.agentID]
	if a == nil {
		a = &agent{id: r.agentID}
		h.agents[r.agentID] = a
	}
	if r.sub != nil {
		r.sub.agent = a
		a.feeds = append(a.feeds, r.sub)
	} else {
		r.tsub.agent = a
		a.watchers = append(a.watchers, r.tsub)
	}
	a.pending = append(a.pending, r)
}

func agentIDs(as []*agent) []uuid.UUID {
	out := make([]uuid.UUID, len(as))
	for i, a := range as {
		out[i] = a.id
	}
	return out
}

// pendingAfters is the `after` of each feed waiting for its answer.
func pendingAfters(a *agent) []*int64 {
	var out []*int64
	for _, r := range a.pending {
		if r.sub != nil {
			out = append(out, r.after)
		}
	}
	return out
}

// applied is what applying steps leaves to do outside the lock.
type applied struct {
	revoked []models.Scope
	handed  []handover
}

// handover: the latest objects of stacks were handed to an agent's feeds
// out of order at feed position seq.
type handover struct {
	agent  uuid.UUID
	stacks []uuid.UUID
	seq    int64
}

// applyAgentLocked applies one agent's step to its subscriptions.
func (h *Hub) applyAgentLocked(s stepped, wm int64, out *applied) {
	a, fx := s.a, s.fx
	if h.agents[a.id] != a {
		return // every subscriber left meanwhile
	}
	if fx.revoke && h.closeAnsweredLocked(a) {
		out.revoked = append(out.revoked, models.AgentScope(a.id))
	}
	if fx.gone {
		for _, r := range a.pending {
			r.fail(errKeyGone)
		}
		h.closeAllLocked(a)
		h.forgetAgentLocked(a)
		return
	}
	for _, st := range fx.unindex {
		h.unindexLocked(a, st)
	}
	for _, st := range fx.index {
		h.indexLocked(a, st)
	}
	a.state = s.next
	for _, c := range fx.changes {
		for _, t := range slices.Clone(a.watchers) {
			h.sendTargetChangeLocked(t, c)
		}
	}
	if h.handOverLocked(a, fx.forced) {
		// Everything dispatched after these objects lies above the
		// watermark: an agent resuming after it has received them.
		out.handed = append(out.handed, handover{a.id, stacksOf(fx.forced), wm})
	}
	h.answerLocked(a, fx.starts)
}

// closeAnsweredLocked closes the agent's subscriptions answered before this
// round; it reports whether there were any.
func (h *Hub) closeAnsweredLocked(a *agent) bool {
	closed := false
	for _, s := range slices.Clone(a.feeds) {
		if s.ready {
			h.endLocked(s)
			closed = true
		}
	}
	for _, t := range slices.Clone(a.watchers) {
		if t.ready {
			h.closeTargetSubLocked(t)
			closed = true
		}
	}
	return closed
}

// closeAllLocked closes every subscription of the agent.
func (h *Hub) closeAllLocked(a *agent) {
	for _, s := range slices.Clone(a.feeds) {
		h.endLocked(s)
	}
	for _, t := range slices.Clone(a.watchers) {
		h.closeTargetSubLocked(t)
	}
}

// handOverLocked sends forced objects to the agent's answered feeds; it
// reports whether any feed took them.
func (h *Hub) handOverLocked(a *agent, forced []*models.DeploymentObject) bool {
	if len(forced) == 0 {
		return false
	}
	handed := false
	for _, s := range slices.Clone(a.feeds) {
		if !s.ready {
			continue
		}
		for _, o := range forced {
			h.deliverLocked(s, o, true)
		}
		handed = true
	}
	return handed
}

// answerLocked answers the agent's waiting registrations: feeds with their
// start (in order), target-change subscriptions with nothing.
func (h *Hub) answerLocked(a *agent, starts []feedStart) {
	i := 0
	for _, r := range a.pending {
		if r.sub != nil {
			r.sub.ready = true
			r.answer(regResult{start: starts[i]})
			i++
		} else {
			r.tsub.ready = true
			r.answer(regResult{})
		}
	}
	a.pending = nil
}

// afterApply records hand-overs and reports revocations, outside the lock.
func (h *Hub) afterApply(ctx context.Context, out applied) {
	if len(out.handed) > 0 {
		go func() {
			ctx := context.WithoutCancel(ctx)
			for _, ho := range out.handed {
				if err := h.markHanded(ctx, ho.agent, ho.stacks, ho.seq); err != nil {
					h.logger.Warn("feed: marking targets handed over", "err", err)
				}
			}
		}()
	}
	if h.opts.OnRevoke != nil {
		for _, sc := range out.revoked {
			h.opts.OnRevoke(sc)
		}
	}
}
