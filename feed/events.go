package feed

import (
	"context"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/models"
)

// eventSub is one agentEvents subscription (dashboards, live only).
type eventSub struct {
	out[*models.AgentEvent] // ch and its wake-ups (the Stream)
	view                    models.EventView
	key                     string // view.Key()
	stop                    func() bool
	watch                   *watch
	done                    bool
}

// eventBatch is the most events one poll reads.
const eventBatch = 10000

// AgentEvents implements graph.Feed: agent events from now on that the
// agentEvents query shows the scope with the same filter
// (models.EventView): admins all; a generator the events about objects of
// its live stacks; an agent its own.
func (h *Hub) AgentEvents(ctx context.Context, scope models.Scope, filter *models.AgentEventFilter) (<-chan *models.AgentEvent, Stream, error) {
	pid, hash, err := models.PrincipalKey(ctx, h.db, scope)
	if err != nil {
		return nil, nil, h.internal("feed.AgentEvents", err)
	}
	e := &eventSub{out: newOut[*models.AgentEvent](h.opts.BufferSize)}
	e.view.Scope = viewScope(scope)
	if filter != nil {
		e.view.Filter = *filter
	}
	e.key = e.view.Key()
	if pid != uuid.Nil {
		e.watch = &watch{scope: scope, id: pid, pakHash: hash, close: func() { h.closeEventSubLocked(e) }}
	}
	// The cursor may be dropped (nobody subscribed) between its start and
	// this subscription's: then start it again.
	for {
		if err := h.startEventCursor(ctx); err != nil {
			return nil, nil, err
		}
		h.mu.Lock()
		if h.closed || h.evInit {
			break
		}
		h.mu.Unlock()
	}
	defer h.mu.Unlock()
	if h.closed {
		return nil, nil, ErrClosed
	}
	h.events[e] = struct{}{}
	if e.watch != nil {
		h.addWatchLocked(e.watch)
	}
	e.end = func() {
		h.mu.Lock()
		h.closeEventSubLocked(e)
		h.mu.Unlock()
	}
	e.stop = context.AfterFunc(ctx, e.end)
	return e.ch, e, nil
}

// startEventCursor sets the event cursor if nobody subscribes yet: events
// from now on.
func (h *Hub) startEventCursor(ctx context.Context) error {
	h.mu.Lock()
	initd := h.evInit
	h.mu.Unlock()
	if initd {
		return nil
	}
	since, seen, err := h.eventCursor(ctx)
	if err != nil {
		return h.internal("feed.AgentEvents", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.evInit {
		h.evInit, h.evSince = true, since
		for _, s := range seen {
			h.evSeen[s.ID] = s.CreatedAt
		}
	}
	return nil
}

func (h *Hub) closeEventSubLocked(e *eventSub) {
	if e.done {
		return
	}
	e.done = true
	if e.stop != nil {
		e.stop()
	}
	h.removeWatchLocked(e.watch)
	delete(h.events, e)
	e.close()
}

// processEvents reads the agent events created since the cursor, keeps
// those not delivered yet, asks models which of them each subscription's
// view shows, and delivers them; then it moves the cursor to the event
// horizon read before them. It does nothing while nobody subscribes.
func (h *Hub) processEvents(ctx context.Context) error {
	h.mu.Lock()
	if len(h.events) == 0 {
		h.evInit = false
		clear(h.evSeen)
		h.mu.Unlock()
		return nil
	}
	since := h.evSince
	h.mu.Unlock()
	evs, next, err := h.loadEvents(ctx, since)
	if err != nil {
		return err
	}
	fresh, views, index := h.freshEvents(evs)
	if len(fresh) > 0 {
		vctx, cancel := context.WithTimeout(ctx, dbTimeout)
		sees, err := models.AgentEventViewsSee(vctx, h.db, views, eventIDs(fresh))
		cancel()
		if err != nil {
			return err
		}
		h.deliverEvents(fresh, index, sees)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.evInit && next.After(h.evSince) {
		h.evSince = next
		for id, t := range h.evSeen {
			if t.Before(next) { // never read again
				delete(h.evSeen, id)
			}
		}
	}
	return nil
}

// freshEvents is the events not delivered yet, and the distinct views of
// the subscriptions (with their index by key).
func (h *Hub) freshEvents(evs []*models.AgentEvent) ([]*models.AgentEvent, []models.EventView, map[string]int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var fresh []*models.AgentEvent
	for _, ev := range evs {
		if _, seen := h.evSeen[ev.ID]; !seen {
			fresh = append(fresh, ev)
		}
	}
	var views []models.EventView
	index := map[string]int{}
	for e := range h.events {
		if _, ok := index[e.key]; !ok {
			index[e.key] = len(views)
			views = append(views, e.view)
		}
	}
	return fresh, views, index
}

// deliverEvents sends each fresh event, in order, to the subscriptions whose
// view shows it, and marks it delivered. A subscription made since the
// views were taken gets none of these: they committed before it was made.
func (h *Hub) deliverEvents(fresh []*models.AgentEvent, index map[string]int, sees []map[uuid.UUID]bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ev := range fresh {
		if _, seen := h.evSeen[ev.ID]; seen {
			continue
		}
		h.evSeen[ev.ID] = ev.CreatedAt
		for e := range h.events {
			i, ok := index[e.key]
			if !ok || !sees[i][ev.ID] {
				continue
			}
			if !e.send(ev) {
				h.logger.Info("feed: slow subscriber cut off", "kind", KindEventDashboard, "buffer", cap(e.ch))
				h.cutOffLocked(KindEventDashboard)
				h.closeEventSubLocked(e)
			}
		}
	}
}

func eventIDs(evs []*models.AgentEvent) []uuid.UUID {
	out := make([]uuid.UUID, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}
