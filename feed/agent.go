package feed

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/brokkr/brokkr/models"
)

// agentState is what the hub knows of one agent with subscribers: shared by
// all its subscriptions, loaded and reloaded by the pump only.
type agentState struct {
	id         uuid.UUID
	loaded     bool
	active     bool
	pakHash    string
	stacks     map[uuid.UUID]struct{}
	subs       []*objSub
	targetSubs []*targetSub
}

// targetSub is one agentTargetChanges subscription (live only).
type targetSub struct {
	ch    chan *models.AgentTargetChange
	waker *Waker // told of every send on and the close of ch
	agent *agentState
	stop  func() bool
	ready bool
	done  bool
}

func uuidArray(ids []uuid.UUID) any {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = id.String()
	}
	return pgdialect.Array(s)
}

var unauthenticated = &models.Error{Kind: models.KindUnauthenticated, Message: "the agent's key is no longer valid"}

// agentFor resolves which agent a caller may subscribe as: agents as
// themselves, admins any agent, generators none.
func (h *Hub) agentFor(ctx context.Context, scope models.Scope, agentID uuid.UUID) (uuid.UUID, error) {
	switch scope.Role {
	case models.RoleAdmin:
		if agentID == uuid.Nil {
			return uuid.Nil, models.Invalid("agentId", "agentId is required for an admin")
		}
	case models.RoleAgent:
		if agentID != uuid.Nil && agentID != scope.AgentID {
			return uuid.Nil, models.NotFound("agent")
		}
		agentID = scope.AgentID
	default:
		return uuid.Nil, models.Forbidden("only agents and admins subscribe to an agent's feed")
	}
	var deleted bool
	err := h.db.NewRaw("SELECT deleted_at IS NOT NULL FROM agents WHERE id = ?", agentID).Scan(ctx, &deleted)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && deleted) {
		if scope.Role == models.RoleAgent {
			return uuid.Nil, unauthenticated
		}
		return uuid.Nil, models.NotFound("agent")
	}
	if err != nil {
		return uuid.Nil, h.internal("feed.agentFor", err)
	}
	return agentID, nil
}

// AgentDeploymentObjects implements graph.Feed (DESIGN §5).
func (h *Hub) AgentDeploymentObjects(ctx context.Context, scope models.Scope, agentID uuid.UUID, after *int64) (<-chan *models.DeploymentObject, error) {
	id, err := h.agentFor(ctx, scope, agentID)
	if err != nil {
		return nil, err
	}
	if after != nil && *after < 0 {
		return nil, models.Invalid("after", "after must not be negative")
	}
	s := &objSub{ch: make(chan *models.DeploymentObject, h.opts.BufferSize), waker: wakerFor(ctx)}
	r := &registration{sub: s, agentID: id, after: after, res: make(chan regResult, 1)}
	if err := h.subscribe(ctx, r); err != nil {
		return nil, err
	}
	s.waker.take()
	return s.ch, nil
}

// AgentTargetChanges implements graph.Feed: targets added to and removed from
// the agent from now on.
func (h *Hub) AgentTargetChanges(ctx context.Context, scope models.Scope, agentID uuid.UUID) (<-chan *models.AgentTargetChange, error) {
	id, err := h.agentFor(ctx, scope, agentID)
	if err != nil {
		return nil, err
	}
	t := &targetSub{ch: make(chan *models.AgentTargetChange, h.opts.BufferSize), waker: wakerFor(ctx)}
	r := &registration{tsub: t, agentID: id, res: make(chan regResult, 1)}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	h.regs = append(h.regs, r)
	t.stop = context.AfterFunc(ctx, func() {
		h.mu.Lock()
		h.closeTargetSubLocked(t)
		h.mu.Unlock()
	})
	h.mu.Unlock()
	h.wake()
	// Wait until the pump has loaded the agent's targets: changes committed
	// after this returns are reported.
	select {
	case res := <-r.res:
		if res.err != nil {
			return nil, res.err
		}
	case <-ctx.Done():
		return nil, models.Translate(ctx.Err(), "agent")
	}
	t.waker.take()
	return t.ch, nil
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
		if i := slices.Index(a.targetSubs, t); i >= 0 {
			a.targetSubs = slices.Delete(a.targetSubs, i, i+1)
		}
		h.dropAgentIfIdleLocked(a)
	}
	close(t.ch)
	t.waker.wake()
}

func (h *Hub) sendTargetChangeLocked(t *targetSub, c *models.AgentTargetChange) {
	if t.done || !t.ready {
		return
	}
	select {
	case t.ch <- c:
		t.waker.wake()
	default:
		h.closeTargetSubLocked(t)
	}
}

// dropAgentIfIdleLocked forgets an agent nobody subscribes to any more.
func (h *Hub) dropAgentIfIdleLocked(a *agentState) {
	if len(a.subs) > 0 || len(a.targetSubs) > 0 {
		return
	}
	if h.agents[a.id] != a {
		return
	}
	delete(h.agents, a.id)
	for st := range a.stacks {
		h.unindexLocked(a, st)
	}
}

func (h *Hub) indexLocked(a *agentState, stack uuid.UUID) {
	m := h.byStack[stack]
	if m == nil {
		m = map[*agentState]struct{}{}
		h.byStack[stack] = m
	}
	m[a] = struct{}{}
}

func (h *Hub) unindexLocked(a *agentState, stack uuid.UUID) {
	if m := h.byStack[stack]; m != nil {
		delete(m, a)
		if len(m) == 0 {
			delete(h.byStack, stack)
		}
	}
}

// markDirty asks the pump to reload an agent (a target or agent NOTIFY) and
// to check the key of a principal with dashboard subscriptions.
func (h *Hub) markDirty(id uuid.UUID) {
	h.mu.Lock()
	if _, ok := h.agents[id]; ok {
		h.dirty[id] = struct{}{}
	}
	if _, ok := h.watches[id]; ok {
		h.watchDirty[id] = struct{}{}
	}
	h.mu.Unlock()
	h.wake()
}

// markResync asks the pump to reload every agent (listener reconnected).
func (h *Hub) markResync() {
	h.mu.Lock()
	h.resync = true
	h.mu.Unlock()
	h.wake()
}

type agentRow struct {
	ID        uuid.UUID  `bun:"id"`
	Status    string     `bun:"status"`
	PakHash   *string    `bun:"pak_hash"`
	DeletedAt *time.Time `bun:"deleted_at"`
}

type targetRow struct {
	AgentID      uuid.UUID `bun:"agent_id"`
	StackID      uuid.UUID `bun:"stack_id"`
	CreatedAt    time.Time `bun:"created_at"`
	Announced    bool      `bun:"announced"`
	AnnouncedSeq *int64    `bun:"announced_seq"`
	Acked        bool      `bun:"acked"` // the agent reported an event for the stack's latest live object
}

// deliveredBefore reports whether an agent resuming after `after` certainly
// has the stack's latest object (at or below after). An object handed over
// out of order (a new target) may have been lost with the connection: it
// counts as received once the agent resumes after a later position of the
// feed (everything sent after it carries a higher sequence), or reported an
// event for it. Otherwise it is delivered again: a rare repeat of one latest
// object rather than a loss.
func (t targetRow) deliveredBefore(after int64) bool {
	if !t.Announced {
		return false
	}
	return t.Acked || (t.AnnouncedSeq != nil && *t.AnnouncedSeq < after)
}

// processAgents answers registrations and reloads dirty agents: their status,
// key and targets, from the tables. Added targets deliver their stack's
// latest object; removed ones stop; activation delivers the desired state;
// deletion or key rotation closes the agent's subscriptions.
func (h *Hub) processAgents(ctx context.Context) error {
	h.mu.Lock()
	regs := h.regs
	h.regs = nil
	ids := map[uuid.UUID]struct{}{}
	for id := range h.dirty {
		ids[id] = struct{}{}
	}
	if h.resync {
		for id := range h.agents {
			ids[id] = struct{}{}
		}
		for id := range h.watches {
			h.watchDirty[id] = struct{}{}
		}
		h.resync = false
	}
	h.dirty = map[uuid.UUID]struct{}{}
	wm := h.wm
	var stackRegs []*registration
	var agentRegs []*registration
	for _, r := range regs {
		if r.sub != nil && r.sub.done || r.tsub != nil && r.tsub.done {
			continue
		}
		if r.sub != nil && r.sub.agent == nil && r.stackID != uuid.Nil {
			stackRegs = append(stackRegs, r)
			continue
		}
		agentRegs = append(agentRegs, r)
		ids[r.agentID] = struct{}{}
	}
	// Dashboard subscriptions need only the watermark.
	for _, r := range stackRegs {
		h.registerStackLocked(r, wm)
	}
	h.mu.Unlock()
	if len(ids) == 0 {
		return nil
	}
	list := make([]uuid.UUID, 0, len(ids))
	for id := range ids {
		list = append(list, id)
	}
	var agents []agentRow
	if err := h.db.NewRaw("SELECT id, status, pak_hash, deleted_at FROM agents WHERE id = ANY(?::uuid[])", uuidArray(list)).Scan(ctx, &agents); err != nil {
		h.requeue(agentRegs, list)
		return fmt.Errorf("feed: loading agents: %w", err)
	}
	var targets []targetRow
	if err := h.db.NewRaw(`SELECT t.agent_id, t.stack_id, t.created_at, t.announced_at IS NOT NULL AS announced, t.announced_seq,
		       EXISTS (SELECT 1 FROM agent_events e
		                WHERE e.agent_id = t.agent_id
		                  AND e.deployment_object_id = (SELECT d.id FROM deployment_objects d
		                                                 WHERE d.stack_id = t.stack_id AND d.deleted_at IS NULL
		                                                 ORDER BY d.sequence_id DESC LIMIT 1)) AS acked
		  FROM agent_targets t WHERE t.agent_id = ANY(?::uuid[])`, uuidArray(list)).Scan(ctx, &targets); err != nil {
		h.requeue(agentRegs, list)
		return fmt.Errorf("feed: loading targets: %w", err)
	}
	rows := map[uuid.UUID]agentRow{}
	for _, a := range agents {
		rows[a.ID] = a
	}
	tg := map[uuid.UUID][]targetRow{}
	for _, t := range targets {
		tg[t.AgentID] = append(tg[t.AgentID], t)
	}

	// Which stacks need their latest object: every stack of an active agent
	// gaining a subscriber, becoming active, or gaining that target.
	h.mu.Lock()
	need := map[uuid.UUID]struct{}{}
	newRegs := map[uuid.UUID]bool{}
	for _, r := range agentRegs {
		if r.sub != nil {
			newRegs[r.agentID] = true
		}
	}
	for _, id := range list {
		row, ok := rows[id]
		if !ok || row.DeletedAt != nil || row.Status != string(models.AgentStatusActive) {
			continue
		}
		a := h.agents[id]
		for _, t := range tg[id] {
			switch {
			case newRegs[id]:
				need[t.StackID] = struct{}{}
			case a == nil || !a.loaded || !a.active:
				need[t.StackID] = struct{}{}
			default:
				if _, had := a.stacks[t.StackID]; !had {
					need[t.StackID] = struct{}{}
				}
			}
		}
	}
	h.mu.Unlock()
	latest := map[uuid.UUID]*models.DeploymentObject{}
	if len(need) > 0 {
		stacks := make([]uuid.UUID, 0, len(need))
		for id := range need {
			stacks = append(stacks, id)
		}
		var objs []*models.DeploymentObject
		err := h.db.NewSelect().Model(&objs).ColumnExpr("d.*").
			DistinctOn("d.stack_id").
			Where("d.stack_id = ANY(?::uuid[])", uuidArray(stacks)).
			Where("d.deleted_at IS NULL").
			Where("d.sequence_id <= ?", wm).
			OrderExpr("d.stack_id, d.sequence_id DESC").
			Scan(ctx)
		if err == nil {
			err = h.attachStacks(ctx, objs)
		}
		if err != nil {
			h.requeue(agentRegs, list)
			return fmt.Errorf("feed: loading latest objects: %w", err)
		}
		for _, o := range objs {
			latest[o.StackID] = o
		}
	}

	type answer struct {
		r   *registration
		res regResult
	}
	var answers []answer
	var revoked []models.Scope
	type announce struct {
		agent  uuid.UUID
		stacks []uuid.UUID
		seq    int64 // the feed position at hand-over
	}
	var announces []announce

	h.mu.Lock()
	// Attach new registrations to their agent's state (created if needed).
	for _, r := range agentRegs {
		if r.sub != nil && r.sub.done || r.tsub != nil && r.tsub.done {
			continue
		}
		a := h.agents[r.agentID]
		if a == nil {
			a = &agentState{id: r.agentID, stacks: map[uuid.UUID]struct{}{}}
			h.agents[r.agentID] = a
		}
		if r.sub != nil {
			r.sub.agent = a
			a.subs = append(a.subs, r.sub)
		} else {
			r.tsub.agent = a
			a.targetSubs = append(a.targetSubs, r.tsub)
		}
	}
	now := time.Now()
	for _, id := range list {
		a := h.agents[id]
		if a == nil {
			continue // every subscriber left meanwhile
		}
		row, ok := rows[id]
		pak := ""
		if ok && row.PakHash != nil {
			pak = *row.PakHash
		}
		if !ok || row.DeletedAt != nil || (a.loaded && pak != a.pakHash) {
			// Deleted or key rotated: close what was subscribed before this
			// round. Subscribers registering now authenticated after the
			// change (or are refused below if the agent is gone).
			var old []*objSub
			for _, s := range a.subs {
				if s.ready {
					old = append(old, s)
				}
			}
			var oldT []*targetSub
			for _, t := range a.targetSubs {
				if t.ready {
					oldT = append(oldT, t)
				}
			}
			for _, s := range old {
				h.endLocked(s)
			}
			for _, t := range oldT {
				h.closeTargetSubLocked(t)
			}
			if len(old)+len(oldT) > 0 {
				revoked = append(revoked, models.Scope{Role: models.RoleAgent, AgentID: id})
			}
			if !ok || row.DeletedAt != nil {
				for _, s := range slices.Clone(a.subs) {
					h.endLocked(s)
				}
				for _, t := range slices.Clone(a.targetSubs) {
					h.closeTargetSubLocked(t)
				}
				continue
			}
			if h.agents[id] != a {
				continue // nobody left to serve
			}
		}
		active := row.Status == string(models.AgentStatusActive)
		newStacks := map[uuid.UUID]struct{}{}
		for _, t := range tg[id] {
			newStacks[t.StackID] = struct{}{}
		}
		var added []uuid.UUID
		for st := range newStacks {
			if _, had := a.stacks[st]; !had {
				added = append(added, st)
				h.indexLocked(a, st)
			}
		}
		var removed []uuid.UUID
		for st := range a.stacks {
			if _, keep := newStacks[st]; !keep {
				removed = append(removed, st)
				h.unindexLocked(a, st)
			}
		}
		wasLoaded, wasActive := a.loaded, a.active
		a.stacks, a.active, a.pakHash, a.loaded = newStacks, active, pak, true

		// Target changes for agentTargetChanges subscribers already there.
		if wasLoaded {
			created := map[uuid.UUID]time.Time{}
			for _, t := range tg[id] {
				created[t.StackID] = t.CreatedAt
			}
			for _, st := range added {
				c := &models.AgentTargetChange{Action: models.TargetAdded, AgentID: id, StackID: st, At: created[st]}
				for _, t := range slices.Clone(a.targetSubs) {
					h.sendTargetChangeLocked(t, c)
				}
			}
			for _, st := range removed {
				c := &models.AgentTargetChange{Action: models.TargetRemoved, AgentID: id, StackID: st, At: now}
				for _, t := range slices.Clone(a.targetSubs) {
					h.sendTargetChangeLocked(t, c)
				}
			}
		}
		for _, t := range a.targetSubs {
			if !t.ready {
				t.ready = true
				for _, r := range agentRegs {
					if r.tsub == t {
						answers = append(answers, answer{r, regResult{}})
					}
				}
			}
		}

		// Deliveries to subscribers already answered.
		var forcedStacks []uuid.UUID
		if active && wasLoaded {
			if !wasActive {
				forcedStacks = sortedStacks(newStacks, latest)
			} else {
				forcedStacks = sortedStacks(toSet(added), latest)
			}
		}
		var handed bool
		for _, s := range slices.Clone(a.subs) {
			if !s.ready {
				continue
			}
			for _, st := range forcedStacks {
				if o := latest[st]; o != nil {
					h.deliverLocked(s, o, true)
				}
			}
			handed = true
		}
		if handed && len(forcedStacks) > 0 {
			// Everything dispatched after these objects lies above the
			// watermark: an agent resuming after it has received them.
			announces = append(announces, announce{id, forcedStacks, h.wm})
		}

		// Answers for new subscribers.
		for _, s := range a.subs {
			if s.ready {
				continue
			}
			s.ready = true
			var r *registration
			for _, x := range agentRegs {
				if x.sub == s {
					r = x
					break
				}
			}
			if r == nil {
				continue
			}
			res := regResult{cursor: wm}
			if active {
				all := make([]uuid.UUID, 0, len(newStacks))
				for st := range newStacks {
					all = append(all, st)
				}
				if r.after == nil {
					// The desired state, in ascending order: whatever a cut
					// leaves unsent lies above the agent's resume point.
					res.announce = all
					res.initial = latestInOrder(newStacks, latest)
				} else {
					after := *r.after
					un := map[uuid.UUID]struct{}{}
					for _, t := range tg[id] {
						if o := latest[t.StackID]; o != nil && o.SequenceID <= after && !t.deliveredBefore(after) {
							un[t.StackID] = struct{}{}
						}
					}
					for _, st := range all {
						if _, ok := un[st]; !ok {
							res.announce = append(res.announce, st)
						}
					}
					res.initial, res.forced, res.after = latestInOrder(un, latest), true, after
					if after < wm {
						res.stacks, res.from, res.to = all, after, wm
					}
					res.cursor = max(after, wm)
				}
			} else if r.after != nil {
				res.cursor = max(*r.after, wm)
			}
			answers = append(answers, answer{r, res})
		}
	}
	h.mu.Unlock()

	for _, an := range answers {
		an.r.res <- an.res
	}
	if len(announces) > 0 {
		go func() {
			for _, an := range announces {
				if err := h.markHanded(context.WithoutCancel(ctx), an.agent, an.stacks, an.seq); err != nil {
					h.logger.Warn("feed: marking targets announced", "err", err)
				}
			}
		}()
	}
	if h.opts.OnRevoke != nil {
		for _, sc := range revoked {
			h.opts.OnRevoke(sc)
		}
	}
	// Registrations of agents that are gone were refused by closing their
	// subscriptions above; answer them so their goroutines end.
	for _, r := range agentRegs {
		r.fail(unauthenticated)
	}
	return nil
}

// requeue puts registrations and dirty agents back after a failed load.
func (h *Hub) requeue(regs []*registration, ids []uuid.UUID) {
	h.mu.Lock()
	h.regs = append(regs, h.regs...)
	for _, id := range ids {
		if _, ok := h.agents[id]; ok {
			h.dirty[id] = struct{}{}
		}
	}
	h.mu.Unlock()
}

func toSet(ids []uuid.UUID) map[uuid.UUID]struct{} {
	m := make(map[uuid.UUID]struct{}, len(ids))
	for _, id := range ids {
		m[id] = struct{}{}
	}
	return m
}

// latestInOrder is the latest object of each stack, in sequence order.
func latestInOrder(stacks map[uuid.UUID]struct{}, latest map[uuid.UUID]*models.DeploymentObject) []*models.DeploymentObject {
	var out []*models.DeploymentObject
	for st := range stacks {
		if o := latest[st]; o != nil {
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b *models.DeploymentObject) int {
		return int(a.SequenceID - b.SequenceID)
	})
	return out
}

// sortedStacks orders stacks by their latest object's sequence.
func sortedStacks(stacks map[uuid.UUID]struct{}, latest map[uuid.UUID]*models.DeploymentObject) []uuid.UUID {
	objs := latestInOrder(stacks, latest)
	out := make([]uuid.UUID, len(objs))
	for i, o := range objs {
		out[i] = o.StackID
	}
	return out
}
