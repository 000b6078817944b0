package feed

import (
	"bytes"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/models"
)

// The agent feed's state machine, as a pure function: what the hub knew of
// an agent (agentState) and what one pump round read about it (agentChange)
// give the agent's next state and what to do (agentEffects). It touches no
// database, channel or lock: the pump reads the change (loadAgents), calls
// step, and applies the effects to the agent's subscriptions
// (applyAgentLocked).

// stackSet is a set of stack ids.
type stackSet map[uuid.UUID]struct{}

// sorted is the set in a fixed order (by id).
func (s stackSet) sorted() []uuid.UUID {
	out := make([]uuid.UUID, 0, len(s))
	for id := range s {
		out = append(out, id)
	}
	slices.SortFunc(out, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// minus is the members of s that are not in t, in a fixed order.
func (s stackSet) minus(t stackSet) []uuid.UUID {
	var out []uuid.UUID
	for _, id := range s.sorted() {
		if _, ok := t[id]; !ok {
			out = append(out, id)
		}
	}
	return out
}

// agentState is what the hub knows of one agent with subscribers.
type agentState struct {
	loaded  bool     // read at least once
	pakHash string   // the key its answered subscriptions were made with
	targets stackSet // every stack it targets (agentTargetChanges)
	carried stackSet // the stacks its feed carries: targeted while ACTIVE
}

// stateOf is the state a row read from the database describes. States are
// never changed once made, so carried shares targets' map when the agent's
// feed carries every target (an ACTIVE agent), and is nil when it carries
// none: one map per idle agent, not two.
func stateOf(row *models.FeedAgentState) agentState {
	s := agentState{loaded: true, pakHash: row.PakHash, targets: make(stackSet, len(row.Targets))}
	n := 0
	for _, t := range row.Targets {
		s.targets[t.StackID] = struct{}{}
		if t.Carried {
			n++
		}
	}
	switch n {
	case 0:
	case len(row.Targets):
		s.carried = s.targets
	default:
		s.carried = stackSet{}
		for _, t := range row.Targets {
			if t.Carried {
				s.carried[t.StackID] = struct{}{}
			}
		}
	}
	return s
}

// agentChange is what one pump round read about an agent.
type agentChange struct {
	row    *models.FeedAgentState                 // nil: the agent is deleted
	latest map[uuid.UUID]*models.DeploymentObject // latest live objects, at or below wm, of the stacks toRead named
	wm     int64                                  // the hub's watermark: everything at or below it is dispatched
	now    time.Time                              // when targets that vanished were removed, as far as we know
	feeds  []*int64                               // the `after` of each new agentDeploymentObjects subscription
}

// agentEffects is what the hub does after a step.
type agentEffects struct {
	gone    bool                        // the agent is deleted: close every subscription, refuse the new ones
	revoke  bool                        // its key changed (or it is gone): close the subscriptions answered before
	index   []uuid.UUID                 // stacks its feed starts carrying
	unindex []uuid.UUID                 // stacks its feed stops carrying
	changes []*models.AgentTargetChange // for its answered agentTargetChanges subscriptions
	// forced is for its answered feeds: the latest object of each stack the
	// feed starts carrying (a new target, or activation), in sequence order,
	// handed over at once, below the feed's cursor.
	forced []*models.DeploymentObject
	starts []feedStart // how each new feed starts, as change.feeds
}

// toRead names the stacks whose latest object step needs: every carried
// stack when feeds start (their desired state, or a resume), and the stacks
// an agent already loaded starts carrying.
func (s agentState) toRead(row *models.FeedAgentState, feedsStart bool) []uuid.UUID {
	if row == nil {
		return nil
	}
	var out []uuid.UUID
	for _, t := range row.Targets {
		if !t.Carried {
			continue
		}
		if _, had := s.carried[t.StackID]; feedsStart || (s.loaded && !had) {
			out = append(out, t.StackID)
		}
	}
	return out
}

// step is the agent feed's transition: prev and what was read give the
// next state and the effects.
func step(prev agentState, c agentChange) (agentState, agentEffects) {
	if c.row == nil {
		return agentState{}, agentEffects{gone: true, revoke: true, unindex: prev.carried.sorted()}
	}
	next := stateOf(c.row)
	fx := agentEffects{
		revoke:  prev.loaded && prev.pakHash != next.pakHash,
		index:   next.carried.minus(prev.carried),
		unindex: prev.carried.minus(next.carried),
	}
	// Subscriptions answered before a key change are closed: nothing more
	// for them. A first load has no "before" to compare with.
	if prev.loaded && !fx.revoke {
		fx.changes = targetChanges(prev, c)
		fx.forced = latestInOrder(fx.index, c.latest)
	}
	for _, after := range c.feeds {
		fx.starts = append(fx.starts, start(next, c, after))
	}
	return next, fx
}

// targetChanges are the targets added (oldest first) and removed since prev.
func targetChanges(prev agentState, c agentChange) []*models.AgentTargetChange {
	var out []*models.AgentTargetChange
	now := stackSet{}
	for _, t := range c.row.Targets {
		now[t.StackID] = struct{}{}
		if _, had := prev.targets[t.StackID]; !had {
			out = append(out, &models.AgentTargetChange{Action: models.TargetAdded, AgentID: c.row.ID, StackID: t.StackID, At: t.CreatedAt})
		}
	}
	for _, st := range prev.targets.minus(now) {
		out = append(out, &models.AgentTargetChange{Action: models.TargetRemoved, AgentID: c.row.ID, StackID: st, At: c.now})
	}
	return out
}

// feedStart is how a subscription to deployment objects starts: what it
// sends first, and the cursor it goes live with.
type feedStart struct {
	initial  []*models.DeploymentObject // sent first, as they are (sequence order)
	stacks   []uuid.UUID                // then the replay (from, to] over these stacks
	from, to int64
	cursor   int64 // the cursor once initial and replay are sent
	// Agent feeds: announce is marked announced before anything is sent
	// (targeted stacks not announced yet whose content comes in ascending
	// order above what the agent will resume after, if cut short); if
	// forced, each initial object's
	// stack is marked handed at after once that object is sent (it lies at
	// or below after, so a resume would not replay it).
	announce []uuid.UUID
	forced   bool
	after    int64
}

// start is how a new feed of an agent in state s starts (DESIGN §5).
// Without after: the desired state (the latest object of every carried
// stack, in sequence order), then live above the watermark. With after: the
// latest object of each carried stack the agent may lack although it lies
// at or below after (a target added while it was away, or handed over out
// of order and perhaps lost with the connection), then the replay of
// (after, wm], then live.
func start(s agentState, c agentChange, after *int64) feedStart {
	st := feedStart{cursor: c.wm}
	if after != nil {
		st.cursor = max(*after, c.wm)
	}
	if len(s.carried) == 0 {
		return st
	}
	all := s.carried.sorted()
	if after == nil {
		// In ascending order: whatever a cut leaves unsent lies above the
		// agent's resume point.
		st.announce, st.initial = unannounced(c.row, nil), latestInOrder(all, c.latest)
		return st
	}
	lacking := stackSet{}
	for _, t := range c.row.Targets {
		if o := c.latest[t.StackID]; t.Carried && o != nil && o.SequenceID <= *after && !deliveredBefore(t, *after) {
			lacking[t.StackID] = struct{}{}
		}
	}
	st.announce = unannounced(c.row, lacking)
	st.initial, st.forced, st.after = latestInOrder(lacking.sorted(), c.latest), true, *after
	if *after < c.wm {
		st.stacks, st.from, st.to = all, *after, c.wm
	}
	return st
}

// unannounced is the carried targets not announced yet, but for those in
// except: the ones to mark announced (marking one twice changes nothing, so
// a reconnect whose targets are all announced writes nothing).
func unannounced(row *models.FeedAgentState, except stackSet) []uuid.UUID {
	var out []uuid.UUID
	for _, t := range row.Targets {
		if _, skip := except[t.StackID]; t.Carried && !t.Announced && !skip {
			out = append(out, t.StackID)
		}
	}
	return out
}

// deliveredBefore reports whether an agent resuming after `after` certainly
// has the stack's latest object (at or below after). An object handed over
// out of order (a new target) may have been lost with the connection: it
// counts as received once the agent resumes after a later position of the
// feed (everything sent after it carries a higher sequence), or reported an
// event for it. Otherwise it is delivered again: a rare repeat of one latest
// object rather than a loss.
func deliveredBefore(t models.FeedTarget, after int64) bool {
	if !t.Announced {
		return false
	}
	return t.Acked || (t.AnnouncedSeq != nil && *t.AnnouncedSeq < after)
}

// latestInOrder is the latest object of each of the stacks, in sequence
// order (stacks without one are skipped).
func latestInOrder(stacks []uuid.UUID, latest map[uuid.UUID]*models.DeploymentObject) []*models.DeploymentObject {
	var out []*models.DeploymentObject
	for _, st := range stacks {
		if o := latest[st]; o != nil {
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b *models.DeploymentObject) int {
		switch {
		case a.SequenceID < b.SequenceID:
			return -1
		case a.SequenceID > b.SequenceID:
			return 1
		}
		return 0
	})
	return out
}

// stacksOf is the stacks of objs, in their order.
func stacksOf(objs []*models.DeploymentObject) []uuid.UUID {
	out := make([]uuid.UUID, len(objs))
	for i, o := range objs {
		out[i] = o.StackID
	}
	return out
}
