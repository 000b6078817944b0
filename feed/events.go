package feed

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/models"
)

// eventSub is one agentEvents subscription (dashboards, live only).
type eventSub struct {
	ch     chan *models.AgentEvent
	waker  *Waker // told of every send on and the close of ch
	scope  models.Scope
	filter models.AgentEventFilter
	stop   func() bool
	watch  *watch
	done   bool
}

// AgentEvents implements graph.Feed: agent events from now on that match the
// filter, within scope (admins all; a generator the events on its stacks; an
// agent its own).
func (h *Hub) AgentEvents(ctx context.Context, scope models.Scope, filter *models.AgentEventFilter) (<-chan *models.AgentEvent, error) {
	switch scope.Role {
	case models.RoleAdmin, models.RoleGenerator, models.RoleAgent:
	default:
		return nil, models.Forbidden("unknown role")
	}
	e := &eventSub{ch: make(chan *models.AgentEvent, h.opts.BufferSize), scope: scope, waker: wakerFor(ctx)}
	if filter != nil {
		e.filter = *filter
	}
	pid, hash, err := h.keyOf(ctx, scope)
	if err != nil {
		return nil, err
	}
	if pid != uuid.Nil {
		e.watch = &watch{scope: scope, id: pid, pakHash: hash, close: func() { h.closeEventSubLocked(e) }}
	}
	h.mu.Lock()
	initd := h.evInit
	h.mu.Unlock()
	var since time.Time
	var seen []uuid.UUID
	if !initd {
		// The first subscriber sets the cursor: events from now on.
		var err error
		if since, seen, err = h.eventCursor(ctx); err != nil {
			return nil, h.internal("feed.AgentEvents", err)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	if !h.evInit {
		if since.IsZero() { // the cursor was dropped meanwhile: rare, start now
			h.mu.Unlock()
			var err error
			since, seen, err = h.eventCursor(ctx)
			h.mu.Lock()
			if err != nil {
				return nil, h.internal("feed.AgentEvents", err)
			}
		}
		if !h.evInit {
			h.evInit, h.evSince = true, since
			for _, id := range seen {
				h.evSeen[id] = since
			}
		}
	}
	h.events[e] = struct{}{}
	if e.watch != nil {
		h.addWatchLocked(e.watch)
	}
	e.stop = context.AfterFunc(ctx, func() {
		h.mu.Lock()
		h.closeEventSubLocked(e)
		h.mu.Unlock()
	})
	e.waker.take()
	return e.ch, nil
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
	close(e.ch)
	e.waker.wake()
}

type eventRow struct {
	ID                 uuid.UUID `bun:"id"`
	AgentID            uuid.UUID `bun:"agent_id"`
	DeploymentObjectID uuid.UUID `bun:"deployment_object_id"`
	EventType          string    `bun:"event_type"`
	Status             string    `bun:"status"`
	Message            *string   `bun:"message"`
	CreatedAt          time.Time `bun:"created_at"`
	UpdatedAt          time.Time `bun:"updated_at"`
	StackID            uuid.UUID `bun:"stack_id"`
	GeneratorID        uuid.UUID `bun:"generator_id"`
}

func (e *eventSub) match(r *eventRow) bool {
	switch e.scope.Role {
	case models.RoleGenerator:
		if r.GeneratorID != e.scope.GeneratorID {
			return false
		}
	case models.RoleAgent:
		if r.AgentID != e.scope.AgentID {
			return false
		}
	}
	f := &e.filter
	return (f.AgentID == nil || *f.AgentID == r.AgentID) &&
		(f.DeploymentObjectID == nil || *f.DeploymentObjectID == r.DeploymentObjectID) &&
		(f.StackID == nil || *f.StackID == r.StackID) &&
		(f.EventType == nil || *f.EventType == r.EventType) &&
		(f.Status == nil || *f.Status == r.Status)
}

// eventCursor is where a first event subscriber starts: now (database
// clock), with the events already visible inside the lookback marked seen so
// that only events committed from now on are delivered.
func (h *Hub) eventCursor(ctx context.Context) (time.Time, []uuid.UUID, error) {
	var since time.Time
	if err := h.db.NewRaw("SELECT clock_timestamp()").Scan(ctx, &since); err != nil {
		return since, nil, fmt.Errorf("feed: reading the clock: %w", err)
	}
	var ids []uuid.UUID
	if err := h.db.NewRaw("SELECT id FROM agent_events WHERE created_at > ?", since.Add(-h.opts.EventLookback)).Scan(ctx, &ids); err != nil {
		return since, nil, fmt.Errorf("feed: reading events: %w", err)
	}
	return since, ids, nil
}

// processEvents reads the agent events created since the newest one seen
// (minus a lookback for transactions that committed late), skips those
// already delivered, and dispatches the rest. It does nothing while nobody
// subscribes.
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
	var rows []*eventRow
	err := h.db.NewRaw(`SELECT e.id, e.agent_id, e.deployment_object_id, e.event_type, e.status, e.message,
	       e.created_at, e.updated_at, d.stack_id, s.generator_id
	  FROM agent_events e
	  JOIN deployment_objects d ON d.id = e.deployment_object_id
	  JOIN stacks s ON s.id = d.stack_id
	 WHERE e.created_at > ? AND e.deleted_at IS NULL
	 ORDER BY e.created_at, e.id
	 LIMIT 10000`, since.Add(-h.opts.EventLookback)).Scan(ctx, &rows)
	if err != nil {
		return fmt.Errorf("feed: reading events: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range rows {
		if _, seen := h.evSeen[r.ID]; seen {
			continue
		}
		h.evSeen[r.ID] = r.CreatedAt
		if r.CreatedAt.After(h.evSince) {
			h.evSince = r.CreatedAt
		}
		ev := &models.AgentEvent{
			ID: r.ID, AgentID: r.AgentID, DeploymentObjectID: r.DeploymentObjectID,
			EventType: r.EventType, Status: r.Status, Message: r.Message,
			CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		}
		for e := range h.events {
			if e.match(r) {
				select {
				case e.ch <- ev:
					e.waker.wake()
				default:
					h.closeEventSubLocked(e)
				}
			}
		}
	}
	horizon := h.evSince.Add(-2 * h.opts.EventLookback)
	for id, t := range h.evSeen {
		if t.Before(horizon) {
			delete(h.evSeen, id)
		}
	}
	return nil
}
