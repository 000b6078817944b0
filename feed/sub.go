package feed

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/models"
)

// objSub is one subscription to deployment objects: an agent's feed
// (agent != nil) or a dashboard's view of one stack.
//
// Life cycle: the subscribing call registers it with the pump and starts its
// replay goroutine. The pump answers the registration with what to send first
// (desired state or replay range) and from then on queues every live object
// in pending. The replay goroutine sends the initial objects and the replay,
// drains pending, and then marks the subscription live and exits: from then
// on the pump sends straight into ch, without blocking, and a full buffer
// cuts the subscription off. An idle live subscription owns no goroutine.
//
// Closing: while replaying, only the replay goroutine closes ch (others set
// done and cancel it); once live, whoever sets done under h.mu closes ch.
type objSub struct {
	ch      chan *models.DeploymentObject
	waker   *Waker // told of every send on and the close of ch (nil: nobody)
	cancel  context.CancelFunc
	stop    func() bool // stops the context.AfterFunc watching the caller's ctx
	agent   *agentState // nil for a stack subscription
	stackID uuid.UUID   // stack subscriptions
	watch   *watch      // stack subscriptions of generators and agents

	// Guarded by Hub.mu.
	ready   bool                       // registration answered: dispatches reach it
	live    bool                       // replay over: dispatches go straight to ch
	done    bool                       // unregistered; ch closed or closing
	cursor  int64                      // highest sequence sent in order (live)
	pending []*models.DeploymentObject // queued while replaying
	forced  []bool                     // pending[i] is sent even below the cursor
}

// regResult is the pump's answer to a registration.
type regResult struct {
	err      error
	initial  []*models.DeploymentObject // sent first, as they are (sequence order)
	stacks   []uuid.UUID                // replay (from, to] over these stacks
	from, to int64
	cursor   int64 // the cursor once initial and replay are sent
	// Agent feeds: announce is marked announced before anything is sent
	// (stacks whose content comes in ascending order above what the agent
	// will resume after, if cut short); if forced, each initial object's
	// stack is marked once that object is handed over (it lies at or below
	// after, so a resume would not replay it).
	announce []uuid.UUID
	forced   bool
	after    int64 // the resume point, when forced: the feed position of the initial objects
}

// registration is a subscription waiting for the pump.
type registration struct {
	sub     *objSub
	tsub    *targetSub
	agentID uuid.UUID
	stackID uuid.UUID
	after   *int64
	res     chan regResult // capacity 1
}

func (r *registration) fail(err error) {
	select {
	case r.res <- regResult{err: err}:
	default:
	}
}

// deliverLocked hands o to s. forced objects (the latest object of a newly
// targeted stack) are sent even below the cursor and do not move it.
func (h *Hub) deliverLocked(s *objSub, o *models.DeploymentObject, forced bool) {
	if s.done {
		return
	}
	if !s.live {
		if len(s.pending) >= h.opts.MaxPending {
			h.logger.Info("feed: subscriber cut off while replaying (too much pending)")
			h.endLocked(s)
			return
		}
		s.pending = append(s.pending, o)
		s.forced = append(s.forced, forced)
		return
	}
	if !forced && o.SequenceID <= s.cursor {
		return
	}
	select {
	case s.ch <- o:
		s.waker.wake()
		if !forced {
			s.cursor = o.SequenceID
		}
	default:
		h.logger.Info("feed: slow subscriber cut off", "buffer", cap(s.ch))
		h.endLocked(s)
	}
}

// endLocked unregisters s and closes its channel (or has its replay
// goroutine close it).
func (h *Hub) endLocked(s *objSub) {
	if s.done {
		return
	}
	s.done = true
	s.pending, s.forced = nil, nil
	if s.stop != nil {
		s.stop()
	}
	h.removeWatchLocked(s.watch)
	h.unregisterLocked(s)
	if s.live {
		close(s.ch)
		s.waker.wake()
	} else {
		s.cancel()
	}
}

func (h *Hub) unregisterLocked(s *objSub) {
	if a := s.agent; a != nil {
		for i, x := range a.subs {
			if x == s {
				a.subs = append(a.subs[:i], a.subs[i+1:]...)
				break
			}
		}
		h.dropAgentIfIdleLocked(a)
		return
	}
	if m := h.stacks[s.stackID]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(h.stacks, s.stackID)
		}
	}
}

// subscribe registers s with the pump and starts its replay goroutine.
func (h *Hub) subscribe(ctx context.Context, r *registration) error {
	s := r.sub
	sctx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		cancel()
		return ErrClosed
	}
	h.replayng[s] = struct{}{}
	h.regs = append(h.regs, r)
	s.stop = context.AfterFunc(ctx, func() {
		h.mu.Lock()
		h.endLocked(s)
		h.mu.Unlock()
	})
	h.mu.Unlock()
	h.wake()
	go h.replay(sctx, s, r)
	return nil
}

// replay is the subscription's goroutine until it goes live.
func (h *Hub) replay(ctx context.Context, s *objSub, r *registration) {
	live := false
	defer func() {
		if live {
			return
		}
		h.mu.Lock()
		delete(h.replayng, s)
		if !s.done {
			s.done = true
			if s.stop != nil {
				s.stop()
			}
			h.removeWatchLocked(s.watch)
			h.unregisterLocked(s)
		}
		h.mu.Unlock()
		s.cancel()
		close(s.ch)
		s.waker.wake()
	}()
	var res regResult
	select {
	case <-ctx.Done():
		return
	case res = <-r.res:
	}
	if res.err != nil {
		h.logger.Debug("feed: subscription refused by the pump", "err", res.err)
		return
	}
	send := func(o *models.DeploymentObject) bool {
		select {
		case s.ch <- o:
			s.waker.wake()
			return true
		case <-ctx.Done():
			return false
		}
	}
	if s.agent != nil && len(res.announce) > 0 {
		if err := h.markAnnounced(ctx, s.agent.id, res.announce); err != nil {
			if ctx.Err() == nil {
				h.logger.Warn("feed: marking targets announced", "err", err)
			}
			return
		}
	}
	for _, o := range res.initial {
		if !send(o) {
			return
		}
		if res.forced && s.agent != nil {
			if err := h.markHanded(ctx, s.agent.id, []uuid.UUID{o.StackID}, res.after); err != nil && ctx.Err() == nil {
				h.logger.Warn("feed: marking a target announced", "err", err)
			}
		}
	}
	if len(res.stacks) > 0 && res.to > res.from {
		if err := h.replayRange(ctx, res.stacks, res.from, res.to, send); err != nil {
			if ctx.Err() == nil {
				h.logger.Warn("feed: replay failed; closing the subscription", "err", err)
			}
			return
		}
	}
	cursor := res.cursor
	for {
		h.mu.Lock()
		if s.done {
			h.mu.Unlock()
			return
		}
		if len(s.pending) == 0 {
			s.live = true
			s.cursor = cursor
			delete(h.replayng, s)
			h.mu.Unlock()
			live = true
			return
		}
		pending, forced := s.pending, s.forced
		s.pending, s.forced = nil, nil
		h.mu.Unlock()
		for i, o := range pending {
			if !forced[i] && o.SequenceID <= cursor {
				continue
			}
			if !send(o) {
				return
			}
			if !forced[i] {
				cursor = o.SequenceID
			}
		}
	}
}

// replayRange sends the live objects of stacks with from < sequence <= to, in
// order, a page at a time.
func (h *Hub) replayRange(ctx context.Context, stacks []uuid.UUID, from, to int64, send func(*models.DeploymentObject) bool) error {
	ids := uuidArray(stacks)
	for from < to {
		select {
		case h.replays <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		var page []*models.DeploymentObject
		err := h.db.NewSelect().Model(&page).ColumnExpr("d.*").
			Where("d.stack_id = ANY(?::uuid[])", ids).
			Where("d.sequence_id > ? AND d.sequence_id <= ?", from, to).
			Where("d.deleted_at IS NULL").
			OrderExpr("d.sequence_id").
			Limit(500).
			Scan(ctx)
		if err == nil {
			err = h.attachStacks(ctx, page)
		}
		<-h.replays
		if err != nil {
			return fmt.Errorf("feed: replay: %w", err)
		}
		for _, o := range page {
			if !send(o) {
				return ctx.Err()
			}
		}
		if len(page) < 500 {
			return nil
		}
		from = page[len(page)-1].SequenceID
	}
	return nil
}

// markAnnounced records that the feed hands these targeted stacks to the
// agent in sequence order (DESIGN §5: a target added while the agent was
// away is delivered on resume until then): whatever a cut leaves unsent lies
// above the agent's resume point and is replayed.
func (h *Hub) markAnnounced(ctx context.Context, agentID uuid.UUID, stacks []uuid.UUID) error {
	_, err := h.db.NewRaw(
		"UPDATE agent_targets SET announced_at = now(), announced_seq = -1 WHERE agent_id = ? AND stack_id = ANY(?::uuid[]) AND announced_at IS NULL",
		agentID, uuidArray(stacks)).Exec(ctx)
	return err
}

// markHanded records that the latest objects of these stacks were handed to
// the agent out of sequence order at feed position seq: a resume at or below
// seq, without an event from the agent for the object, delivers it again
// (targetRow.deliveredBefore), since the connection may have died with it.
func (h *Hub) markHanded(ctx context.Context, agentID uuid.UUID, stacks []uuid.UUID, seq int64) error {
	_, err := h.db.NewRaw(
		"UPDATE agent_targets SET announced_at = coalesce(announced_at, now()), announced_seq = ? WHERE agent_id = ? AND stack_id = ANY(?::uuid[])",
		seq, agentID, uuidArray(stacks)).Exec(ctx)
	return err
}
