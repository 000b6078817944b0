package feed

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/models"
)

// objSub is one subscription to deployment objects: an agent's feed
// (agent != nil) or a dashboard's view of one stack (view != nil).
//
// Life cycle: the subscribing call registers it with the pump and starts its
// replay goroutine. The pump answers the registration with how it starts
// (feedStart: desired state or replay range) and from then on queues every
// live object in pending. The replay goroutine sends the initial objects and
// the replay, drains pending, and then marks the subscription live and
// exits: from then on the pump sends straight into ch, without blocking, and
// a full buffer cuts the subscription off. An idle live subscription owns
// no goroutine.
//
// Closing: while replaying, only the replay goroutine closes ch (others set
// done and cancel it); once live, whoever sets done under h.mu closes ch.
type objSub struct {
	out[*models.DeploymentObject] // ch and its wake-ups (the Stream)
	cancel                        context.CancelFunc
	stop                          func() bool       // stops the context.AfterFunc watching the caller's ctx
	agent                         *agent            // agent feeds (set by the pump before it answers)
	view                          *models.StackView // dashboard subscriptions
	watch                         *watch            // dashboard subscriptions of generators and agents

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
	err   error
	start feedStart
}

// registration is a subscription waiting for the pump: an agent feed (sub
// with agentID), an agentTargetChanges subscription (tsub), or a dashboard
// (sub with a view).
type registration struct {
	sub     *objSub
	tsub    *targetSub
	agentID uuid.UUID
	after   *int64
	res     chan regResult // capacity 1
}

func (r *registration) isStack() bool { return r.sub != nil && r.sub.view != nil }

// done reports whether the subscription ended before it was answered.
// Called with h.mu held.
func (r *registration) done() bool {
	return r.sub != nil && r.sub.done || r.tsub != nil && r.tsub.done
}

// answer gives the registration its answer, once (later answers are dropped).
func (r *registration) answer(res regResult) {
	select {
	case r.res <- res:
	default:
	}
}

func (r *registration) fail(err error) { r.answer(regResult{err: err}) }

// deliverLocked hands o to s. forced objects (the latest object of a newly
// carried stack) are sent even below the cursor and do not move it.
func (h *Hub) deliverLocked(s *objSub, o *models.DeploymentObject, forced bool) {
	if s.done {
		return
	}
	if !s.live {
		if len(s.pending) >= h.opts.MaxPending {
			h.logger.Info("feed: subscriber cut off while replaying (too much pending)", "kind", s.kind())
			h.cutOffLocked(s.kind())
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
	if !s.send(o) {
		h.logger.Info("feed: slow subscriber cut off", "kind", s.kind(), "buffer", cap(s.ch))
		h.cutOffLocked(s.kind())
		h.endLocked(s)
		return
	}
	if !forced {
		s.cursor = o.SequenceID
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
		s.close()
	} else {
		s.cancel()
	}
}

func (h *Hub) unregisterLocked(s *objSub) {
	if a := s.agent; a != nil {
		for i, x := range a.feeds {
			if x == s {
				a.feeds = append(a.feeds[:i], a.feeds[i+1:]...)
				break
			}
		}
		h.dropAgentIfIdleLocked(a)
		return
	}
	if s.view == nil {
		return
	}
	if m := h.stacks[s.view.StackID]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(h.stacks, s.view.StackID)
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
	s.end = func() {
		h.mu.Lock()
		h.endLocked(s)
		h.mu.Unlock()
	}
	s.stop = context.AfterFunc(ctx, s.end)
	h.mu.Unlock()
	h.wake()
	go h.replay(sctx, s, r)
	return nil
}

// replay is the subscription's goroutine until it goes live: it waits for
// the pump's answer, sends what comes first, and drains what the pump
// queued meanwhile.
func (h *Hub) replay(ctx context.Context, s *objSub, r *registration) {
	live := false
	defer func() {
		if !live {
			h.endReplay(s)
		}
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
			s.wake(o)
			return true
		case <-ctx.Done():
			return false
		}
	}
	if !h.sendStart(ctx, s, res.start, send) {
		return
	}
	live = h.drain(s, res.start.cursor, send)
}

// endReplay unregisters a subscription whose replay ended before it went
// live, and closes its channel.
func (h *Hub) endReplay(s *objSub) {
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
	s.close()
}

// sendStart sends the start's initial objects and its replay; false when
// the subscription ended or failed meanwhile.
func (h *Hub) sendStart(ctx context.Context, s *objSub, st feedStart, send func(*models.DeploymentObject) bool) bool {
	if s.agent != nil && len(st.announce) > 0 {
		if err := h.markAnnounced(ctx, s.agent.id, st.announce); err != nil {
			if ctx.Err() == nil {
				h.logger.Warn("feed: marking targets announced", "err", err)
			}
			return false
		}
	}
	for _, o := range st.initial {
		if !send(o) {
			return false
		}
		if st.forced && s.agent != nil {
			if err := h.markHanded(ctx, s.agent.id, []uuid.UUID{o.StackID}, st.after); err != nil && ctx.Err() == nil {
				h.logger.Warn("feed: marking a target handed over", "err", err)
			}
		}
	}
	if st.to <= st.from || (s.agent != nil && len(st.stacks) == 0) {
		return true
	}
	if err := h.replayRange(ctx, s, st, send); err != nil {
		if ctx.Err() == nil {
			h.logger.Warn("feed: replay failed; closing the subscription", "err", err)
		}
		return false
	}
	return true
}

func (h *Hub) markAnnounced(ctx context.Context, agent uuid.UUID, stacks []uuid.UUID) error {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	return models.MarkTargetsAnnounced(ctx, h.db, agent, stacks)
}

func (h *Hub) markHanded(ctx context.Context, agent uuid.UUID, stacks []uuid.UUID, seq int64) error {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	return models.MarkTargetsHanded(ctx, h.db, agent, stacks, seq)
}

// drain sends what the pump queued while s replayed, until nothing is
// left; then s goes live with the cursor reached. false when s ended.
func (h *Hub) drain(s *objSub, cursor int64, send func(*models.DeploymentObject) bool) bool {
	for {
		h.mu.Lock()
		if s.done {
			h.mu.Unlock()
			return false
		}
		if len(s.pending) == 0 {
			s.live = true
			s.cursor = cursor
			delete(h.replayng, s)
			cancel := s.cancel // only stops the replay, which ends here
			s.cancel = nil
			h.mu.Unlock()
			cancel() // an idle subscription keeps no context of its own
			return true
		}
		pending, forced := s.pending, s.forced
		s.pending, s.forced = nil, nil
		h.mu.Unlock()
		for i, o := range pending {
			if !forced[i] && o.SequenceID <= cursor {
				continue
			}
			if !send(o) {
				return false
			}
			if !forced[i] {
				cursor = o.SequenceID
			}
		}
	}
}

// replayPage is the most objects one replay query reads.
const replayPage = 500

// replayRange sends the subscription's objects with from < sequence <= to,
// in order, a page at a time: for an agent feed, the objects of the start's
// stacks that the agent sees; for a dashboard, what its view shows.
func (h *Hub) replayRange(ctx context.Context, s *objSub, st feedStart, send func(*models.DeploymentObject) bool) error {
	for from := st.from; from < st.to; {
		select {
		case h.replays <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		page, err := h.replayPage(ctx, s, st, from)
		<-h.replays
		if err != nil {
			return fmt.Errorf("feed: replay: %w", err)
		}
		for _, o := range page {
			if !send(o) {
				return ctx.Err()
			}
		}
		if len(page) < replayPage {
			return nil
		}
		from = page[len(page)-1].SequenceID
	}
	return nil
}

func (h *Hub) replayPage(ctx context.Context, s *objSub, st feedStart, from int64) ([]*models.DeploymentObject, error) {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	var objs []*models.DeploymentObject
	var err error
	if s.agent != nil {
		objs, err = models.FeedObjects(ctx, h.db, s.agent.id, st.stacks, from, st.to, replayPage)
	} else {
		objs, err = models.StackViewObjects(ctx, h.db, *s.view, from, st.to, replayPage)
	}
	return h.objects.all(objs), err
}
