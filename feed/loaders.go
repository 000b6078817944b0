package feed

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/models"
)

// The pump's loaders: what changed, read from the tables through models
// (the hub writes no SQL). Each read is bounded by dbTimeout.

// dbTimeout bounds each of the hub's reads and writes.
const dbTimeout = 30 * time.Second

// loadObjects reads the next batch of objects above from.
func (h *Hub) loadObjects(ctx context.Context, from int64) ([]*models.DeploymentObject, error) {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	objs, err := models.ObjectsAbove(ctx, h.db, from, h.opts.BatchSize)
	if err != nil {
		return nil, fmt.Errorf("feed: reading objects: %w", err)
	}
	return h.objects.all(objs), nil
}

// loadAgents reads the agents of work (absent: deleted) and the latest
// object, at or below wm, of every stack their steps need.
func (h *Hub) loadAgents(ctx context.Context, work []*agent, wm int64) (map[uuid.UUID]*models.FeedAgentState, map[uuid.UUID]*models.DeploymentObject, error) {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	rows, err := models.FeedAgentStates(ctx, h.db, agentIDs(work))
	if err != nil {
		return nil, nil, fmt.Errorf("feed: loading agents: %w", err)
	}
	need := stackSet{}
	for _, a := range work {
		for _, st := range a.state.toRead(rows[a.id], len(pendingAfters(a)) > 0) {
			need[st] = struct{}{}
		}
	}
	latest, err := models.LatestObjectsUpTo(ctx, h.db, need.sorted(), wm)
	if err != nil {
		return nil, nil, fmt.Errorf("feed: loading latest objects: %w", err)
	}
	for st, o := range latest {
		latest[st] = h.objects.one(o)
	}
	return rows, latest, nil
}

// loadEvents reads the agent events created since the cursor, and the event
// horizon read before them (see eventHorizon).
func (h *Hub) loadEvents(ctx context.Context, since time.Time) ([]*models.AgentEvent, time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	next, err := h.eventHorizon(ctx)
	if err != nil {
		return nil, next, err
	}
	evs, err := models.AgentEventsSince(ctx, h.db, since, eventBatch)
	if err != nil {
		return nil, next, fmt.Errorf("feed: reading events: %w", err)
	}
	if len(evs) == eventBatch && evs[len(evs)-1].CreatedAt.Before(next) {
		next = evs[len(evs)-1].CreatedAt // more to read: from the last one read
	}
	return evs, next, nil
}

// eventHorizon is the time from which the agent-event feed must read so
// that no event still to commit is missed: the start of the oldest
// transaction running in the database (an event's created_at is its
// transaction's start), or now, less EventLookback as a margin (a starting
// transaction shows in pg_stat_activity a moment after its start time is
// fixed); but no further back than EventHorizon. It must be read before the
// events it bounds: a transaction not running when it is read either
// committed before (the read that follows sees its events) or starts after.
func (h *Hub) eventHorizon(ctx context.Context) (time.Time, error) {
	now, oldest, err := models.OldestRunningTransaction(ctx, h.db)
	if err != nil {
		return time.Time{}, fmt.Errorf("feed: reading the oldest running transaction: %w", err)
	}
	from := now
	if oldest != nil && oldest.Before(from) {
		from = *oldest
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
func (h *Hub) eventCursor(ctx context.Context) (time.Time, []models.EventStamp, error) {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	since, err := h.eventHorizon(ctx)
	if err != nil {
		return since, nil, err
	}
	seen, err := models.AgentEventStampsSince(ctx, h.db, since)
	if err != nil {
		return since, nil, fmt.Errorf("feed: reading events: %w", err)
	}
	return since, seen, nil
}
