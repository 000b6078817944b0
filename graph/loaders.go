package graph

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
	"github.com/uptrace/bun"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vikstrous/dataloadgen"

	"github.com/brokkr/brokkr/auth"
	"github.com/brokkr/brokkr/models"
)

// LoaderWait is how long a loader collects keys before it runs its batch.
// gqlgen resolves the children of a list concurrently, so a few
// milliseconds gather every sibling of one level into one statement.
var LoaderWait = 2 * time.Millisecond

// Loaders batch the nested edges of one response (DESIGN §5: the number of
// statements is bounded by the query's depth, not by its rows). Each runs
// one models batch function per distinct argument set, within the caller's
// scope, which it reads from the context of the batch.
type Loaders struct {
	Generator        *dataloadgen.Loader[uuid.UUID, *models.Generator]
	Stack            *dataloadgen.Loader[uuid.UUID, *models.Stack]
	DeploymentObject *dataloadgen.Loader[uuid.UUID, *models.DeploymentObject]
	Agent            *dataloadgen.Loader[uuid.UUID, *models.Agent]

	StackLabels      *dataloadgen.Loader[uuid.UUID, []string]
	StackAnnotations *dataloadgen.Loader[uuid.UUID, []*models.Annotation]
	AgentLabels      *dataloadgen.Loader[uuid.UUID, []string]
	AgentAnnotations *dataloadgen.Loader[uuid.UUID, []*models.Annotation]
	TargetsByAgent   *dataloadgen.Loader[uuid.UUID, []*models.AgentTarget]
	TargetsByStack   *dataloadgen.Loader[uuid.UUID, []*models.AgentTarget]
	LatestByStack    *dataloadgen.Loader[uuid.UUID, *models.DeploymentObject]
	DesiredState     *dataloadgen.Loader[uuid.UUID, []*models.DeploymentObject]

	StacksByGenerator        *dataloadgen.Loader[PageKey, *models.Page[models.Stack]]
	DeploymentObjectsByStack *dataloadgen.Loader[PageKey, *models.Page[models.DeploymentObject]]
	EventsByDeploymentObject *dataloadgen.Loader[PageKey, *models.Page[models.AgentEvent]]
	EventsByAgent            *dataloadgen.Loader[PageKey, *models.Page[models.AgentEvent]]

	cohorts cohorts
	// fetchers maps each loader above to its batch function, for cohort
	// fetches (see load), and costs to the rows a value it delivers holds
	// (see load). Written only by NewLoaders.
	fetchers map[any]any
	costs    map[any]func(any) int

	// budget is the response's row budget (nil: none); refusal is the
	// first error that named where it ran out (see budget.go).
	budget  *models.RowBudget
	refusal atomic.Pointer[gqlerror.Error]
}

// PageKey identifies one nested page: the parent and the field's arguments
// (filter, first, after, includeDeleted) in canonical JSON, so siblings with
// the same arguments share one statement.
type PageKey struct {
	ID   uuid.UUID
	Args string
}

type pageArgs[F any] struct {
	Filter         *F      `json:"f,omitempty"`
	First          *int    `json:"n,omitempty"`
	After          *string `json:"a,omitempty"`
	IncludeDeleted bool    `json:"d,omitempty"`
}

func pageKey[F any](id uuid.UUID, filter *F, args models.ListArgs) PageKey {
	b, err := json.Marshal(pageArgs[F]{Filter: filter, First: args.First, After: args.After, IncludeDeleted: args.IncludeDeleted})
	if err != nil { // plain data: cannot happen
		panic(err)
	}
	return PageKey{ID: id, Args: string(b)}
}

type ctxLoadersKey struct{}

// NewLoaders builds a fresh set of loaders over db, whose reads spend
// budget (nil: no row budget).
func NewLoaders(db bun.IDB, budget *models.RowBudget) *Loaders {
	w := dataloadgen.WithWait(LoaderWait)
	l := &Loaders{fetchers: map[any]any{}, costs: map[any]func(any) int{}, budget: budget}
	l.Generator = newLoader(l, entities(l, db, models.GeneratorsByIDs), one[models.Generator], w)
	l.Stack = newLoader(l, entities(l, db, models.StacksByIDs), one[models.Stack], w)
	l.DeploymentObject = newLoader(l, entities(l, db, models.DeploymentObjectsByIDs), one[models.DeploymentObject], w)
	l.Agent = newLoader(l, entities(l, db, models.AgentsByIDs), one[models.Agent], w)

	l.StackLabels = newLoader(l, byIDs(l, db, models.LabelsByStacks), count[string], w)
	l.StackAnnotations = newLoader(l, byIDs(l, db, models.AnnotationsByStacks), count[*models.Annotation], w)
	l.AgentLabels = newLoader(l, byIDs(l, db, models.LabelsByAgents), count[string], w)
	l.AgentAnnotations = newLoader(l, byIDs(l, db, models.AnnotationsByAgents), count[*models.Annotation], w)
	l.TargetsByAgent = newLoader(l, lists(l, db, models.TargetsByAgents), count[*models.AgentTarget], w)
	l.TargetsByStack = newLoader(l, lists(l, db, models.TargetsByStacks), count[*models.AgentTarget], w)
	l.LatestByStack = newLoader(l, entities(l, db, models.LatestDeploymentObjectsByStacks), one[models.DeploymentObject], w)
	l.DesiredState = newLoader(l, lists(l, db, models.DesiredStatesByAgents), count[*models.DeploymentObject], w)

	l.StacksByGenerator = newLoader(l, paged(l, db, models.StacksByGenerators), rows[models.Stack], w)
	l.DeploymentObjectsByStack = newLoader(l, paged(l, db, models.DeploymentObjectsByStacks), rows[models.DeploymentObject], w)
	l.EventsByDeploymentObject = newLoader(l, paged(l, db, models.EventsByDeploymentObjects), rows[models.AgentEvent], w)
	l.EventsByAgent = newLoader(l, paged(l, db, models.EventsByAgents), rows[models.AgentEvent], w)
	return l
}

// newLoader builds a loader over fetch and records fetch for cohort
// fetches, and cost: the rows of the row budget a value it delivers holds.
func newLoader[K comparable, V any](l *Loaders, fetch func(context.Context, []K) (map[K]V, error), cost func(V) int, opts ...dataloadgen.Option) *dataloadgen.Loader[K, V] {
	loader := dataloadgen.NewMappedLoader(fetch, opts...)
	l.fetchers[loader] = fetch
	l.costs[loader] = func(v any) int { return cost(v.(V)) }
	return loader
}

// The rows a delivered value holds: an object, a list, a page.
func one[T any](v *T) int {
	if v == nil {
		return 0
	}
	return 1
}
func count[T any](v []T) int            { return len(v) }
func rows[T any](p *models.Page[T]) int { return len(p.Nodes) }

func scopeOf(ctx context.Context) (models.Scope, error) {
	s, ok := auth.ForContext(ctx)
	if !ok {
		return models.Scope{}, auth.Failure(ctx)
	}
	return s, nil
}

// byIDs runs a models batch function by id in the scope of the batch's
// context, within the response's row budget.
func byIDs[V any](l *Loaders, db bun.IDB, f func(context.Context, bun.IDB, models.Scope, []uuid.UUID, *models.RowBudget) (map[uuid.UUID]V, error)) func(context.Context, []uuid.UUID) (map[uuid.UUID]V, error) {
	return func(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]V, error) {
		scope, err := scopeOf(ctx)
		if err != nil {
			return nil, err
		}
		return f(ctx, db, scope, ids, l.budget)
	}
}

// unbudgeted adapts a batch function that reads rows by id, which its keys
// bound (one row per key), to byIDs.
func unbudgeted[V any](f func(context.Context, bun.IDB, models.Scope, []uuid.UUID) (map[uuid.UUID]V, error)) func(context.Context, bun.IDB, models.Scope, []uuid.UUID, *models.RowBudget) (map[uuid.UUID]V, error) {
	return func(ctx context.Context, db bun.IDB, s models.Scope, ids []uuid.UUID, _ *models.RowBudget) (map[uuid.UUID]V, error) {
		return f(ctx, db, s, ids)
	}
}

// entities is byIDs for rows by id that have edges of their own: the rows
// of one batch form a cohort (see cohorts).
func entities[T any](l *Loaders, db bun.IDB, f func(context.Context, bun.IDB, models.Scope, []uuid.UUID) (map[uuid.UUID]*T, error)) func(context.Context, []uuid.UUID) (map[uuid.UUID]*T, error) {
	fetch := byIDs(l, db, unbudgeted(f))
	return func(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]*T, error) {
		m, err := fetch(ctx, ids)
		if err == nil {
			nodes := make([]*T, 0, len(m))
			for _, n := range m {
				nodes = append(nodes, n)
			}
			register(l, nodes)
		}
		return m, err
	}
}

// lists is entities for per-parent lists of rows.
func lists[T any](l *Loaders, db bun.IDB, f func(context.Context, bun.IDB, models.Scope, []uuid.UUID, *models.RowBudget) (map[uuid.UUID][]*T, error)) func(context.Context, []uuid.UUID) (map[uuid.UUID][]*T, error) {
	fetch := byIDs(l, db, f)
	return func(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID][]*T, error) {
		m, err := fetch(ctx, ids)
		if err == nil {
			var nodes []*T
			for _, ns := range m {
				nodes = append(nodes, ns...)
			}
			register(l, nodes)
		}
		return m, err
	}
}

func paged[F, T any](l *Loaders, db bun.IDB, f func(context.Context, bun.IDB, models.Scope, []uuid.UUID, *F, models.ListArgs) (map[uuid.UUID]*models.Page[T], error)) func(context.Context, []PageKey) (map[PageKey]*models.Page[T], error) {
	return func(ctx context.Context, keys []PageKey) (map[PageKey]*models.Page[T], error) {
		scope, err := scopeOf(ctx)
		if err != nil {
			return nil, err
		}
		groups := map[string][]uuid.UUID{}
		var order []string
		for _, k := range keys {
			if _, ok := groups[k.Args]; !ok {
				order = append(order, k.Args)
			}
			groups[k.Args] = append(groups[k.Args], k.ID)
		}
		out := make(map[PageKey]*models.Page[T], len(keys))
		var nodes []*T
		for _, a := range order {
			var pa pageArgs[F]
			if err := json.Unmarshal([]byte(a), &pa); err != nil {
				return nil, err
			}
			pages, err := f(ctx, db, scope, groups[a], pa.Filter, models.ListArgs{First: pa.First, After: pa.After, IncludeDeleted: pa.IncludeDeleted, Budget: l.budget})
			if err != nil {
				return nil, err
			}
			for id, p := range pages {
				out[PageKey{ID: id, Args: a}] = p
				nodes = append(nodes, p.Nodes...)
			}
		}
		register(l, nodes)
		return out, nil
	}
}

// loaders returns the loaders of the current response. Outside a response
// (which LoaderExtension always provides) it returns fresh, uncached ones.
func (r *Resolver) loaders(ctx context.Context) *Loaders {
	if l, ok := ctx.Value(ctxLoadersKey{}).(*lazyLoaders); ok {
		return l.get()
	}
	return NewLoaders(r.DB, nil)
}

// lazyLoaders builds a response's loaders on first use. A subscription
// prepares the context of its next response before it waits for the next
// event, so eager loaders would sit in every idle subscription (about
// 5.8 KiB each, measured at 10,000 websocket subscriptions) and be rebuilt
// for every event, needed or not.
type lazyLoaders struct {
	once   sync.Once
	db     bun.IDB
	budget int
	l      atomic.Pointer[Loaders]
}

func (z *lazyLoaders) get() *Loaders {
	z.once.Do(func() { z.l.Store(NewLoaders(z.db, models.NewRowBudget(z.budget))) })
	return z.l.Load()
}

// LoaderExtension gives every response its own loaders: each HTTP request,
// and each event of a subscription (a loader made at websocket upgrade
// would cache rows for the connection's life), with its own row budget of
// RowBudget rows (0 or less: none). A query whose reads pass the budget is
// refused whole: its answer is the one error that names where (see
// budget.go). A mutation's or an event's answer keeps its data, with the
// error on the fields that passed it: a mutation's result must not hide
// its commit.
type LoaderExtension struct {
	DB        bun.IDB
	RowBudget int
}

var _ interface {
	graphql.HandlerExtension
	graphql.ResponseInterceptor
} = LoaderExtension{}

func (LoaderExtension) ExtensionName() string                   { return "BrokkrLoaders" }
func (LoaderExtension) Validate(graphql.ExecutableSchema) error { return nil }
func (e LoaderExtension) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	z := &lazyLoaders{db: e.DB, budget: e.RowBudget}
	resp := next(context.WithValue(ctx, ctxLoadersKey{}, z))
	if l := z.l.Load(); l != nil && resp != nil {
		if refusal := l.refusal.Load(); refusal != nil && isQuery(ctx) {
			return &graphql.Response{Errors: gqlerror.List{refusal}, Extensions: resp.Extensions}
		}
	}
	return resp
}

func isQuery(ctx context.Context) bool {
	op := graphql.GetOperationContext(ctx)
	return op != nil && op.Operation != nil && op.Operation.Operation == ast.Query
}

// A cohort is the set of rows one statement returned (a top-level page,
// or one batch of a loader). gqlgen resolves the children of a list in
// concurrent goroutines, spread over more time than any loader wait when
// the list is long; so the first member of a cohort to resolve an edge
// fetches that edge for every member at once, in one call of the loader's
// batch function, while the other members wait for that fetch and take
// their values from it. That makes the statement count of a query depend
// on its shape only, never on timing or row counts (enqueuing a cohort's
// keys into a timed loader batch was not enough: on a loaded machine the
// wait could expire halfway through the keys and split the batch), and
// no cohort waits out a loader's timer.
type cohorts struct {
	mu     sync.Mutex
	of     map[any]*cohort
	primed map[primeKey]*cohortFetch
}

type cohort struct{ members []any }

type primeKey struct {
	c      *cohort
	loader any
	args   string
}

// cohortFetch is one edge fetched for a whole cohort: vals (a map[K]V) and
// err are set before done closes.
type cohortFetch struct {
	done chan struct{}
	vals any
	err  error
}

// errCohortFetch is what the waiting members of a cohort get when the
// member fetching for them panicked (the panic itself is reported on that
// member's field).
var errCohortFetch = &models.Error{Kind: models.KindInternal, Message: "internal error"}

// register records nodes as one cohort.
func register[T any](l *Loaders, nodes []*T) {
	if len(nodes) < 2 {
		return
	}
	c := &cohort{members: make([]any, len(nodes))}
	l.cohorts.mu.Lock()
	defer l.cohorts.mu.Unlock()
	if l.cohorts.of == nil {
		l.cohorts.of = map[any]*cohort{}
	}
	for i, n := range nodes {
		c.members[i] = n
		l.cohorts.of[n] = c
	}
}

// cohortFor returns the fetch of the edge served by loader with args for
// n's cohort, nil without a cohort. The first caller for that cohort and
// edge also gets the members to fetch for; the others get nil members.
func cohortFor[P any](l *Loaders, n *P, loader any, args string) (*cohortFetch, []*P) {
	l.cohorts.mu.Lock()
	defer l.cohorts.mu.Unlock()
	c := l.cohorts.of[n]
	if c == nil {
		return nil, nil
	}
	k := primeKey{c: c, loader: loader, args: args}
	if f := l.cohorts.primed[k]; f != nil {
		return f, nil
	}
	if l.cohorts.primed == nil {
		l.cohorts.primed = map[primeKey]*cohortFetch{}
	}
	f := &cohortFetch{done: make(chan struct{})}
	l.cohorts.primed[k] = f
	out := make([]*P, 0, len(c.members))
	for _, m := range c.members {
		if p, ok := m.(*P); ok {
			out = append(out, p)
		}
	}
	return f, out
}

// listed registers a top-level page's nodes as a cohort and returns it.
func listed[T any](r *Resolver, ctx context.Context, p *models.Page[T]) *models.Page[T] {
	register(r.loaders(ctx), p.Nodes)
	return p
}

// load returns n's value of the edge served by loader: from its cohort's
// fetch when n has a cohort (the first member to ask runs it, for all), or
// through the loader's timed batch otherwise. Values a cohort fetch found
// also prime the loader's cache. Every value delivered spends its rows of
// the response's row budget (cached or not: a page asked for under two
// aliases is delivered twice).
func load[P any, K comparable, V any](ctx context.Context, l *Loaders, loader *dataloadgen.Loader[K, V], n *P, key func(*P) K, args string) (V, error) {
	v, err := fetchFor(ctx, l, loader, n, key, args)
	if err == nil {
		err = l.budget.Spend(l.costs[loader](v))
	}
	if errors.Is(err, models.ErrRowBudget) {
		var zero V
		return zero, l.refuse(ctx)
	}
	return v, err
}

// fetchFor is load without the row budget's charge.
func fetchFor[P any, K comparable, V any](ctx context.Context, l *Loaders, loader *dataloadgen.Loader[K, V], n *P, key func(*P) K, args string) (V, error) {
	var zero V
	f, members := cohortFor(l, n, loader, args)
	if f == nil {
		return loader.Load(ctx, key(n))
	}
	if members != nil {
		func() {
			defer close(f.done)
			f.err = errCohortFetch // until the fetch returns
			keys := make([]K, 0, len(members))
			seen := make(map[K]struct{}, len(members))
			for _, m := range members {
				k := key(m)
				if _, dup := seen[k]; !dup {
					seen[k] = struct{}{}
					keys = append(keys, k)
				}
			}
			vals, err := l.fetchers[loader].(func(context.Context, []K) (map[K]V, error))(ctx, keys)
			f.vals, f.err = vals, err
			if err == nil {
				for k, v := range vals {
					loader.Prime(k, v)
				}
			}
		}()
	} else {
		select {
		case <-f.done:
		case <-ctx.Done():
			return zero, ctx.Err()
		}
	}
	if f.err != nil {
		return zero, f.err
	}
	v, ok := f.vals.(map[K]V)[key(n)]
	if !ok {
		return zero, dataloadgen.ErrNotFound
	}
	return v, nil
}

// loadOne loads n's parent edge; a row the caller may not see is NotFound.
func loadOne[P any, V any](ctx context.Context, l *Loaders, loader *dataloadgen.Loader[uuid.UUID, V], n *P, fk func(*P) uuid.UUID, what string) (V, error) {
	v, err := load(ctx, l, loader, n, fk, "")
	if errors.Is(err, dataloadgen.ErrNotFound) {
		return v, models.NotFound(what)
	}
	return v, err
}

// loadOptional loads a per-parent value where absence means "none".
func loadOptional[P any, V any](ctx context.Context, l *Loaders, loader *dataloadgen.Loader[uuid.UUID, V], n *P, id func(*P) uuid.UUID) (V, error) {
	v, err := load(ctx, l, loader, n, id, "")
	if errors.Is(err, dataloadgen.ErrNotFound) {
		var zero V
		return zero, nil
	}
	return v, err
}

// loadPage loads a nested page of n; a parent without one gets an empty page.
func loadPage[P any, F any, T any](ctx context.Context, l *Loaders, loader *dataloadgen.Loader[PageKey, *models.Page[T]], n *P, id func(*P) uuid.UUID, filter *F, args models.ListArgs) (*models.Page[T], error) {
	k := pageKey(id(n), filter, args)
	p, err := load(ctx, l, loader, n, func(m *P) PageKey { return PageKey{ID: id(m), Args: k.Args} }, k.Args)
	if errors.Is(err, dataloadgen.ErrNotFound) {
		return &models.Page[T]{}, nil
	}
	return p, err
}
