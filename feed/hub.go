// Package feed is Brokkr's subscription hub (DESIGN §3.3, §5): the agent feed
// of deployment objects, target changes, and the dashboard views of a stack's
// objects and of agent events.
//
// One Hub per process. It keeps one dedicated LISTEN connection (pgx, with a
// reconnect loop) for wake-ups, and reads every row it delivers from the
// tables, never from a notification payload. Deployment objects are read once
// per batch, in sequence order, above the hub's watermark (the highest
// sequence it has dispatched), and handed in memory to the subscribers of
// their stack. Because sequence allocation is serialized with commit (the
// advisory lock of migration 0002), a visible sequence N means every smaller
// sequence is settled, so "everything above the watermark" never skips a late
// commit.
//
// Wake-ups: the triggers of migration 0003 NOTIFY new deployment objects
// (one notification per inserting statement, sent with its commit), target
// changes and agent and generator key changes, whoever writes them (the API, another replica, psql).
// Published wakes the local hub at once, without waiting for the round trip.
// A periodic poll of the watermark is the safety net (and how agent events,
// which have no trigger, reach other replicas). After the listener
// reconnects, every agent's state is reloaded and the objects above the
// watermark are read, so nothing sent while it was away is lost.
//
// Subscriptions are closed (their channel closes, gqlgen completes them) when
// the subscriber is too slow (its bounded buffer is full: it resumes with
// after), when its agent or generator is deleted or deactivated or its key
// rotated (migration 0003 NOTIFYs those changes too; Options.OnRevoke is
// told), and when Run's context ends (shutdown).
package feed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/brokkr/brokkr/models"
)

// Options tunes a Hub. Zero values take the defaults.
type Options struct {
	// BufferSize is each subscription's channel capacity. A live subscriber
	// whose buffer is full is cut off (its channel closes) and resumes with
	// `after`. Default 64.
	BufferSize int
	// MaxPending bounds what is queued for a subscription while it replays;
	// beyond it the subscription is cut off. Default 4096.
	MaxPending int
	// PollInterval is the safety poll of the committed watermark (writes
	// that sent no NOTIFY). Default 500ms.
	PollInterval time.Duration
	// ResyncInterval reloads every subscribed agent's targets and status
	// even without a notification. Default 1 minute.
	ResyncInterval time.Duration
	// BatchSize is the number of deployment objects read per query. Default 1000.
	BatchSize int
	// ReplayConcurrency bounds concurrent replay queries. Default 8.
	ReplayConcurrency int
	// EventLookback is the agent-event feed's safety margin: it reads events
	// created since the start of the oldest transaction still running in the
	// database, minus this margin (a transaction's created_at is its start,
	// and it commits later). Default 5s.
	EventLookback time.Duration
	// EventHorizon bounds how far back the agent-event feed reads for a
	// transaction still running: an event whose transaction commits more
	// than this after it began is missed by live subscribers (queries show
	// it). It bounds what a forgotten open transaction costs each poll.
	// Default 1 minute.
	EventHorizon time.Duration
	// RoundInterval is the least time between two pump rounds woken by
	// Published or NOTIFY, so that a burst of writes is read in one batch.
	// Default 2ms.
	RoundInterval time.Duration
	// OnRevoke, if set, is called (outside the hub's lock) when the hub sees
	// that an agent or generator with subscriptions was deleted (or, for a
	// generator, deactivated) or its key rotated, after closing those
	// subscriptions; the API may close the principal's websockets.
	OnRevoke func(models.Scope)
	// OnPrincipalChange, if set, is called from the listener for every
	// notification that a principal's key, status or deletion may have
	// changed (an agent, a generator, or the admin key), whether or not it
	// has subscriptions: the API re-checks that principal's open websockets.
	// It must not block.
	OnPrincipalChange func(models.Scope)
}

func (o *Options) defaults() {
	if o.BufferSize <= 0 {
		o.BufferSize = 64
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 4096
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 500 * time.Millisecond
	}
	if o.ResyncInterval <= 0 {
		o.ResyncInterval = time.Minute
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 1000
	}
	if o.ReplayConcurrency <= 0 {
		o.ReplayConcurrency = 8
	}
	if o.RoundInterval <= 0 {
		o.RoundInterval = 2 * time.Millisecond
	}
	if o.EventLookback <= 0 {
		o.EventLookback = 5 * time.Second
	}
	if o.EventHorizon <= 0 {
		o.EventHorizon = time.Minute
	}
	o.EventHorizon = max(o.EventHorizon, o.EventLookback)
}

// ErrClosed is returned by subscriptions made after the hub stopped.
var ErrClosed = &models.Error{Kind: models.KindInternal, Message: "the server is shutting down"}

// Hub fans deployment objects, target changes and agent events out to
// subscribers. It implements graph.Feed.
type Hub struct {
	db     *bun.DB
	dsn    string
	logger *slog.Logger
	opts   Options

	kick    chan struct{} // wakes the pump (capacity 1)
	started chan struct{} // closed once Run has read the schema and watermark
	replays chan struct{} // semaphore for replay queries

	channel string // NOTIFY channel, brokkr_<schema>; set before started closes

	mu         sync.Mutex
	closed     bool
	resync     bool                                   // reload every agent on the next pump round
	dirty      map[uuid.UUID]struct{}                 // agents to reload
	regs       []*registration                        // subscriptions waiting for the pump
	agents     map[uuid.UUID]*agentState              // agents with subscribers
	byStack    map[uuid.UUID]map[*agentState]struct{} // stack -> agents targeting it
	stacks     map[uuid.UUID]map[*objSub]struct{}     // stack -> dashboard subscribers
	events     map[*eventSub]struct{}
	replayng   map[*objSub]struct{}              // subscriptions still replaying (closed at shutdown)
	watches    map[uuid.UUID]map[*watch]struct{} // principal -> dashboard subscriptions tied to its key
	watchDirty map[uuid.UUID]struct{}            // principals whose key to check
	wm         int64                             // watermark: highest sequence dispatched

	evSince time.Time               // agent-event cursor: events created at or after it are read
	evSeen  map[uuid.UUID]time.Time // events delivered (created at or after evSince)
	evInit  bool
}

// New returns a hub reading from db and listening on a dedicated connection
// opened from dsn. Call Run to start it.
func New(db *bun.DB, dsn string, logger *slog.Logger, opts Options) *Hub {
	opts.defaults()
	if logger == nil {
		logger = slog.Default()
	}
	return &Hub{
		db:         db,
		dsn:        dsn,
		logger:     logger.With("component", "feed"),
		opts:       opts,
		kick:       make(chan struct{}, 1),
		started:    make(chan struct{}),
		replays:    make(chan struct{}, opts.ReplayConcurrency),
		dirty:      map[uuid.UUID]struct{}{},
		agents:     map[uuid.UUID]*agentState{},
		byStack:    map[uuid.UUID]map[*agentState]struct{}{},
		stacks:     map[uuid.UUID]map[*objSub]struct{}{},
		events:     map[*eventSub]struct{}{},
		replayng:   map[*objSub]struct{}{},
		watches:    map[uuid.UUID]map[*watch]struct{}{},
		watchDirty: map[uuid.UUID]struct{}{},
		evSeen:     map[uuid.UUID]time.Time{},
	}
}

// Channel is the NOTIFY channel of the hub's schema (valid once Run started).
func (h *Hub) Channel() string {
	<-h.started
	return h.channel
}

// Watermark is the highest sequence the hub has dispatched.
func (h *Hub) Watermark() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.wm
}

// Run starts the listener and the pump, and blocks until ctx
// ends; then it closes every subscription and returns nil. It fails early
// only if the database cannot be read at start (and then refuses every
// subscription). Call it once.
func (h *Hub) Run(ctx context.Context) error {
	fail := func(err error) error {
		h.shutdown() // refuse subscriptions: nobody would serve them
		close(h.started)
		return err
	}
	var schema string
	if err := h.db.NewRaw("SELECT current_schema()").Scan(ctx, &schema); err != nil {
		return fail(fmt.Errorf("feed: reading the schema: %w", err))
	}
	var wm int64
	if err := h.db.NewRaw("SELECT coalesce(max(sequence_id), 0) FROM deployment_objects").Scan(ctx, &wm); err != nil {
		return fail(fmt.Errorf("feed: reading the watermark: %w", err))
	}
	h.channel = "brokkr_" + schema
	h.mu.Lock()
	h.wm = wm
	h.mu.Unlock()
	close(h.started)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); h.listen(ctx) }()
	h.pump(ctx)
	wg.Wait()
	h.shutdown()
	return nil
}

// Published wakes the local hub after a mutation committed. Other replicas
// are woken by the database's own NOTIFY (migration 0003). It never blocks.
func (h *Hub) Published(ctx context.Context) { h.wake() }

func (h *Hub) wake() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// pump is the hub's single worker: it loads agents, reads new objects and
// events, and dispatches them. Everything that decides what a subscriber
// receives happens here, in order.
func (h *Hub) pump(ctx context.Context) {
	poll := time.NewTicker(h.opts.PollInterval)
	defer poll.Stop()
	resync := time.NewTicker(h.opts.ResyncInterval)
	defer resync.Stop()
	backoff := 50 * time.Millisecond
	for {
		err := h.round(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			h.logger.Warn("feed: pump round failed; retrying", "err", err, "in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		select {
		case <-ctx.Done():
			return
		case <-h.kick:
			// Let a burst of writes gather into one batch.
			select {
			case <-ctx.Done():
				return
			case <-time.After(h.opts.RoundInterval):
			}
		case <-poll.C:
		case <-resync.C:
			h.mu.Lock()
			h.resync = true
			h.mu.Unlock()
		}
	}
}

// round is one pass of the pump.
func (h *Hub) round(ctx context.Context) error {
	// Objects first when subscribers wait, so that a new subscriber's
	// desired state is computed at the newest watermark (and not followed
	// by objects it supersedes).
	h.mu.Lock()
	waiting := len(h.regs) > 0
	h.mu.Unlock()
	if waiting {
		if err := h.processObjects(ctx); err != nil {
			return err
		}
	}
	if err := h.processAgents(ctx); err != nil {
		return err
	}
	if err := h.processObjects(ctx); err != nil {
		return err
	}
	if err := h.processWatches(ctx); err != nil {
		return err
	}
	return h.processEvents(ctx)
}

// processObjects reads every committed object above the watermark, one batch
// per query, and dispatches each batch to the subscribers of its stacks.
func (h *Hub) processObjects(ctx context.Context) error {
	for {
		h.mu.Lock()
		wm := h.wm
		h.mu.Unlock()
		var objs []*models.DeploymentObject
		err := h.db.NewSelect().Model(&objs).ColumnExpr("d.*").
			Where("d.sequence_id > ?", wm).
			OrderExpr("d.sequence_id").
			Limit(int64(h.opts.BatchSize)).
			Scan(ctx)
		if err != nil {
			return fmt.Errorf("feed: reading objects: %w", err)
		}
		if len(objs) == 0 {
			return nil
		}
		if err := h.attachStacks(ctx, objs); err != nil {
			return err
		}
		h.mu.Lock()
		for _, o := range objs {
			if o.DeletedAt == nil {
				h.dispatchLocked(o)
			}
			h.wm = o.SequenceID
		}
		h.mu.Unlock()
		if len(objs) < h.opts.BatchSize {
			return nil
		}
	}
}

// attachStacks sets Stack on each object (one query for the batch), so that
// resolving `stack` on a payload delivered to thousands of subscribers needs
// no query per subscriber. The objects are shared by all subscribers: the
// API must treat them, and their Stack, as read-only.
func (h *Hub) attachStacks(ctx context.Context, objs []*models.DeploymentObject) error {
	seen := map[uuid.UUID]*models.Stack{}
	var ids []uuid.UUID
	for _, o := range objs {
		if _, ok := seen[o.StackID]; !ok {
			seen[o.StackID] = nil
			ids = append(ids, o.StackID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	var stacks []*models.Stack
	if err := h.db.NewSelect().Model(&stacks).Where("s.id = ANY(?::uuid[])", uuidArray(ids)).Scan(ctx); err != nil {
		return fmt.Errorf("feed: reading stacks: %w", err)
	}
	for _, s := range stacks {
		seen[s.ID] = s
	}
	for _, o := range objs {
		o.Stack = seen[o.StackID]
	}
	return nil
}

// dispatchLocked hands o to the dashboard subscribers of its stack and to
// every active agent targeting it.
func (h *Hub) dispatchLocked(o *models.DeploymentObject) {
	for s := range h.stacks[o.StackID] {
		h.deliverLocked(s, o, false)
	}
	for a := range h.byStack[o.StackID] {
		if !a.active {
			continue
		}
		for _, s := range a.subs {
			if s.ready {
				h.deliverLocked(s, o, false)
			}
		}
	}
}

// shutdown closes every subscription.
func (h *Hub) shutdown() {
	h.mu.Lock()
	h.closed = true
	regs := h.regs
	h.regs = nil
	var subs []*objSub
	for s := range h.replayng {
		subs = append(subs, s)
	}
	for _, a := range h.agents {
		subs = append(subs, a.subs...)
		for _, t := range a.targetSubs {
			h.closeTargetSubLocked(t)
		}
	}
	for _, m := range h.stacks {
		for s := range m {
			subs = append(subs, s)
		}
	}
	for e := range h.events {
		h.closeEventSubLocked(e)
	}
	for _, s := range subs {
		h.endLocked(s)
	}
	h.mu.Unlock()
	for _, r := range regs {
		r.fail(ErrClosed)
	}
}

// errorf logs err with the operation and returns a client-safe internal error.
func (h *Hub) internal(op string, err error) error {
	if err == nil {
		return nil
	}
	var de *models.Error
	if errors.As(err, &de) {
		return err
	}
	return models.Translate(fmt.Errorf("%s: %w", op, err), "")
}
