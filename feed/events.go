package feed

import (
	"context"
	"database/sql"
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
	var seen []seenEvent
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
			for _, s := range seen {
				h.evSeen[s.ID] = s.CreatedAt
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

// eventHorizon is the time from which the agent-event feed must read so
// that no event still to commit is missed: the start of the oldest
// transaction running in the database (an event's created_at is its
// transaction's start), or now, less EventLookback as a margin (a starting
// transaction shows in pg_stat_activity a moment after its start time is
// fixed); but no further back than EventHorizon. It must be read before the
// events it bounds: a transaction not running when it is read either
// committed before (the read that follows sees its events) or starts after.
// Transactions of roles whose sessions this role may not see are not
// counted (brokkr's own connections share one role).
func (h *Hub) eventHorizon(ctx context.Context) (time.Time, error) {
	var now time.Time
	var oldest sql.NullTime
	err := h.db.QueryRowContext(ctx, `SELECT clock_timestamp(), (SELECT min(xact_start) FROM pg_stat_activity
		 WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid())`).Scan(&now, &oldest)
	if err != nil {
		return time.Time{}, fmt.Errorf("feed: reading the oldest running transaction: %w", err)
	}
	from := now
	if oldest.Valid && oldest.Time.Before(from) {
		from = oldest.Time
	}
	from = from.Add(-h.opts.EventLookback)
	if floor := now.Add(-h.opts.EventHorizon); from.Before(floor) {
		from = floor
	}
	return from, nil
}

// eventCursor is where a first event subscriber starts: the event horizon,
// with the events already visible from there marked seen, so that only
// events committed from now on are delivered.
func (h *Hub) eventCursor(ctx context.Context) (time.Time, []seenEvent, error) {
	since, err := h.eventHorizon(ctx)
	if err != nil {
		return since, nil, err
	}
	var seen []seenEvent
	if err := h.db.NewRaw("SELECT id, created_at FROM agent_events WHERE created_at >= ?", since).Scan(ctx, &seen); err != nil {
		return since, nil, fmt.Errorf("feed: reading events: %w", err)
	}
	return since, seen, nil
}

// seenEvent is an event already visible when the cursor was set.
type seenEvent struct {
	ID        uuid.UUID `bun:"id"`
	CreatedAt time.Time `bun:"created_at"`
}

// eventBatch is the most events one poll reads.
const eventBatch = 10000

// processEvents reads the agent events created since the cursor, skips
// those already delivered, and dispatches the rest; then it moves the
// cursor to the event horizon read before them. It does nothing while
// nobody subscribes.
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
	next, err := h.eventHorizon(ctx)
	if err != nil {
		return err
	}
	var rows []*eventRow
	err = h.db.NewRaw(`SELECT e.id, e.agent_id, e.deployment_object_id, e.event_type, e.status, e.message,
	       e.created_at, e.updated_at, d.stack_id, s.generator_id
	  FROM agent_events e
	  JOIN deployment_objects d ON d.id = e.deployment_object_id
	  JOIN stacks s ON s.id = d.stack_id
	 WHERE e.created_at >= ? AND e.deleted_at IS NULL
	 ORDER BY e.created_at, e.id
	 LIMIT ?`, since, eventBatch).Scan(ctx, &rows)
	if err != nil {
		return fmt.Errorf("feed: reading events: %w", err)
	}
	if len(rows) == eventBatch && rows[len(rows)-1].CreatedAt.Before(next) {
		next = rows[len(rows)-1].CreatedAt // more to read: from the last one read
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range rows {
		if _, seen := h.evSeen[r.ID]; seen {
			continue
		}
		h.evSeen[r.ID] = r.CreatedAt
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
