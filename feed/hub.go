// Package feed is Brokkr's subscription hub (DESIGN §3.3, §5): the agent feed
// of deployment objects, target changes, and the dashboard views of a stack's
// objects and of agent events.
//
// One Hub per process, in parts:
//   - the notifier (notifier.go) keeps one dedicated LISTEN connection (pgx),
//     pings it when it is silent, reconnects with backoff and asks for a
//     catch-up after every reconnection: wake-ups only, never data;
//   - the pump (this file) is the hub's single worker: each round it reads
//     what changed through the loaders (loaders.go), which ask package models
//     for rows (the hub writes no SQL), and dispatches it;
//   - the agent feed's state machine is a pure function, step
//     (agentstate.go), applied to the agent's subscriptions by
//     processAgents (agent.go);
//   - subscriptions to objects (sub.go) replay on a goroutine of their own,
//     then go live and own no goroutine; dashboards (stack.go, events.go)
//     see what the matching query shows (models.StackView, models.EventView);
//     watch.go ties them to the key they were made with.
//
// Deployment objects are read once per batch, in sequence order, above the
// hub's watermark (the highest sequence it has dispatched), and handed in
// memory to the subscribers of their stack. Because sequence allocation is
// serialized with commit (the advisory lock of migration 0002), a visible
// sequence N means every smaller sequence is settled, so "everything above
// the watermark" never skips a late commit.
//
// Wake-ups: the triggers of migration 0003 NOTIFY new deployment objects
// (one notification per inserting statement, sent with its commit), target
// changes and agent and generator key changes, whoever writes them (the API,
// another replica, psql). Published wakes the local hub at once, without
// waiting for the round trip. A periodic poll of the watermark is the safety
// net (and how agent events, which have no trigger, reach other replicas).
// After the listener reconnects, every agent's state is reloaded and the
// objects above the watermark are read, so nothing sent while it was away is
// lost.
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
	"slices"
	"sync"
	"sync/atomic"
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
	// PingInterval is how long the LISTEN connection may stay silent before
	// it is pinged; PingTimeout bounds the ping (and connecting). A
	// connection that fails the ping is replaced, and the hub catches up
	// from the tables. Defaults 2s and 3s.
	PingInterval time.Duration
	PingTimeout  time.Duration
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
	// OnListening, if set, is called from the listener every time it
	// listens again, the first time included: notifications sent while it
	// did not listen are lost, so the API re-checks every open websocket's
	// key (the hub itself catches up from the tables). It must not block.
	OnListening func()
}

func (o *Options) defaults() {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	for _, n := range []struct {
		v *int
		d int
	}{{&o.BufferSize, 64}, {&o.MaxPending, 4096}, {&o.BatchSize, 1000}, {&o.ReplayConcurrency, 8}} {
		if *n.v <= 0 {
			*n.v = n.d
		}
	}
	def(&o.PollInterval, 500*time.Millisecond)
	def(&o.ResyncInterval, time.Minute)
	def(&o.PingInterval, 2*time.Second)
	def(&o.PingTimeout, 3*time.Second)
	def(&o.RoundInterval, 2*time.Millisecond)
	def(&o.EventLookback, 5*time.Second)
	def(&o.EventHorizon, time.Minute)
	o.EventHorizon = max(o.EventHorizon, o.EventLookback)
}

// ErrClosed is returned by subscriptions made after the hub stopped.
var ErrClosed = &models.Error{Kind: models.KindInternal, Message: "the server is shutting down"}

// errKeyGone refuses the subscriptions of an agent deleted meanwhile.
var errKeyGone = models.Unauthenticated("the agent's key is no longer valid")

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

	listen  atomic.Bool // the notifier listens (Listening)
	objects interned    // one value per deployment object read

	mu         sync.Mutex
	closed     bool
	resync     bool                               // reload every agent on the next pump round
	dirty      map[uuid.UUID]struct{}             // agents to reload
	regs       []*registration                    // subscriptions waiting for the pump
	agents     map[uuid.UUID]*agent               // agents with subscribers
	byStack    map[uuid.UUID]map[*agent]struct{}  // stack -> agents whose feed carries it
	stacks     map[uuid.UUID]map[*objSub]struct{} // stack -> dashboard subscribers
	events     map[*eventSub]struct{}
	replayng   map[*objSub]struct{}              // subscriptions still replaying (closed at shutdown)
	watches    map[uuid.UUID]map[*watch]struct{} // principal -> dashboard subscriptions tied to its key
	watchDirty map[uuid.UUID]struct{}            // principals whose key to check
	wm         int64                             // watermark: highest sequence dispatched

	cutOffs map[string]uint64 // slow subscribers cut off, by kind (Stats)

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
		agents:     map[uuid.UUID]*agent{},
		byStack:    map[uuid.UUID]map[*agent]struct{}{},
		stacks:     map[uuid.UUID]map[*objSub]struct{}{},
		events:     map[*eventSub]struct{}{},
		replayng:   map[*objSub]struct{}{},
		watches:    map[uuid.UUID]map[*watch]struct{}{},
		watchDirty: map[uuid.UUID]struct{}{},
		evSeen:     map[uuid.UUID]time.Time{},
		cutOffs:    map[string]uint64{},
	}
}

// Subscription kinds, as the GraphQL fields that make them (Stats.CutOffs).
const (
	KindAgentFeed      = "agentDeploymentObjects"
	KindTargetChanges  = "agentTargetChanges"
	KindStackDashboard = "stackDeploymentObjects"
	KindEventDashboard = "agentEvents"
)

// Stats is what the hub reports for metrics.
type Stats struct {
	// Watermark is the newest sequence dispatched to subscribers.
	Watermark int64
	// CutOffs counts the subscriptions cut off for being too slow (a full
	// buffer, or too much queued while replaying), by kind, since start.
	CutOffs map[string]uint64
}

// Stats reports the watermark and the cut-offs so far.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := Stats{Watermark: h.wm, CutOffs: make(map[string]uint64, 4)}
	for _, k := range []string{KindAgentFeed, KindTargetChanges, KindStackDashboard, KindEventDashboard} {
		st.CutOffs[k] = h.cutOffs[k]
	}
	return st
}

// cutOffLocked counts a slow subscriber cut off.
func (h *Hub) cutOffLocked(kind string) { h.cutOffs[kind]++ }

// kind is the kind of an object subscription.
func (s *objSub) kind() string {
	if s.view != nil {
		return KindStackDashboard
	}
	return KindAgentFeed
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

// Run starts the notifier and the pump, and blocks until ctx ends; then it
// closes every subscription and returns nil. It fails early only if the
// database cannot be read at start (and then refuses every subscription).
// Call it once.
func (h *Hub) Run(ctx context.Context) error {
	if err := h.init(ctx); err != nil {
		h.shutdown() // refuse subscriptions: nobody would serve them
		close(h.started)
		return err
	}
	close(h.started)
	n := &notifier{
		dsn: h.dsn, channel: h.channel, logger: h.logger,
		pingEvery: h.opts.PingInterval, pingTimeout: h.opts.PingTimeout,
		ready: h.listening, lost: func() { h.listen.Store(false) }, notify: h.onNotification,
	}
	var wg sync.WaitGroup
	wg.Go(func() { n.run(ctx) })
	h.pump(ctx)
	wg.Wait()
	h.shutdown()
	return nil
}

// init reads the channel and the watermark.
func (h *Hub) init(ctx context.Context) error {
	ch, err := models.NotifyChannel(ctx, h.db)
	if err != nil {
		return fmt.Errorf("feed: reading the schema: %w", err)
	}
	wm, err := models.MaxSequence(ctx, h.db)
	if err != nil {
		return fmt.Errorf("feed: reading the watermark: %w", err)
	}
	h.channel = ch
	h.mu.Lock()
	h.wm = wm
	h.mu.Unlock()
	return nil
}

// Listening reports whether the hub listens for the database's
// notifications now (readiness: a replica whose hub does not listen learns
// of other replicas' writes only by its poll, and of key changes late).
func (h *Hub) Listening() bool { return h.listen.Load() }

// listening runs every time the notifier listens (again): the hub catches
// up from the tables, and OnListening is told.
func (h *Hub) listening() {
	h.listen.Store(true)
	h.markResync()
	if f := h.opts.OnListening; f != nil {
		f()
	}
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
		wait := time.Duration(0)
		if err != nil {
			h.logger.Warn("feed: pump round failed; retrying", "err", err, "in", backoff)
			wait, backoff = backoff, min(backoff*2, 5*time.Second)
		} else {
			backoff = 50 * time.Millisecond
		}
		if !h.idle(ctx, wait, poll.C, resync.C) {
			return
		}
	}
}

// idle waits before the next round: wait after a failure; otherwise until a
// wake-up (then RoundInterval more, so that a burst of writes is read in one
// batch), the poll or the resync. false when ctx ended.
func (h *Hub) idle(ctx context.Context, wait time.Duration, poll, resync <-chan time.Time) bool {
	if wait > 0 {
		return sleep(ctx, wait)
	}
	select {
	case <-ctx.Done():
		return false
	case <-h.kick:
		return sleep(ctx, h.opts.RoundInterval)
	case <-poll:
	case <-resync:
		h.mu.Lock()
		h.resync = true
		h.mu.Unlock()
	}
	return true
}

// sleep waits d; false when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
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
		subs = append(subs, a.feeds...)
		for _, t := range slices.Clone(a.watchers) {
			h.closeTargetSubLocked(t)
		}
		for _, r := range a.pending {
			r.fail(ErrClosed)
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

// internal returns err as it is when it is a domain error (models.Error),
// else a client-safe internal error wrapping it (the presenter logs the
// cause).
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
