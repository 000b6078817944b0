package graph

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
	"github.com/uptrace/bun"
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

// NewLoaders builds a fresh set of loaders over db.
func NewLoaders(db bun.IDB) *Loaders {
	w := dataloadgen.WithWait(LoaderWait)
	l := &Loaders{}
	l.Generator = dataloadgen.NewMappedLoader(entities(l, db, models.GeneratorsByIDs), w)
	l.Stack = dataloadgen.NewMappedLoader(entities(l, db, models.StacksByIDs), w)
	l.DeploymentObject = dataloadgen.NewMappedLoader(entities(l, db, models.DeploymentObjectsByIDs), w)
	l.Agent = dataloadgen.NewMappedLoader(entities(l, db, models.AgentsByIDs), w)

	l.StackLabels = dataloadgen.NewMappedLoader(byIDs(db, models.LabelsByStacks), w)
	l.StackAnnotations = dataloadgen.NewMappedLoader(byIDs(db, models.AnnotationsByStacks), w)
	l.AgentLabels = dataloadgen.NewMappedLoader(byIDs(db, models.LabelsByAgents), w)
	l.AgentAnnotations = dataloadgen.NewMappedLoader(byIDs(db, models.AnnotationsByAgents), w)
	l.TargetsByAgent = dataloadgen.NewMappedLoader(lists(l, db, models.TargetsByAgents), w)
	l.TargetsByStack = dataloadgen.NewMappedLoader(lists(l, db, models.TargetsByStacks), w)
	l.LatestByStack = dataloadgen.NewMappedLoader(entities(l, db, models.LatestDeploymentObjectsByStacks), w)
	l.DesiredState = dataloadgen.NewMappedLoader(lists(l, db, models.DesiredStatesByAgents), w)

	l.StacksByGenerator = dataloadgen.NewMappedLoader(paged(l, db, models.StacksByGenerators), w)
	l.DeploymentObjectsByStack = dataloadgen.NewMappedLoader(paged(l, db, models.DeploymentObjectsByStacks), w)
	l.EventsByDeploymentObject = dataloadgen.NewMappedLoader(paged(l, db, models.EventsByDeploymentObjects), w)
	l.EventsByAgent = dataloadgen.NewMappedLoader(paged(l, db, models.EventsByAgents), w)
	return l
}

func scopeOf(ctx context.Context) (models.Scope, error) {
	s, ok := auth.ForContext(ctx)
	if !ok {
		return models.Scope{}, auth.Failure(ctx)
	}
	return s, nil
}

func byIDs[V any](db bun.IDB, f func(context.Context, bun.IDB, models.Scope, []uuid.UUID) (map[uuid.UUID]V, error)) func(context.Context, []uuid.UUID) (map[uuid.UUID]V, error) {
	return func(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]V, error) {
		scope, err := scopeOf(ctx)
		if err != nil {
			return nil, err
		}
		return f(ctx, db, scope, ids)
	}
}

// entities is byIDs for rows that have edges of their own: the rows of one
// batch form a cohort (see cohorts).
func entities[T any](l *Loaders, db bun.IDB, f func(context.Context, bun.IDB, models.Scope, []uuid.UUID) (map[uuid.UUID]*T, error)) func(context.Context, []uuid.UUID) (map[uuid.UUID]*T, error) {
	fetch := byIDs(db, f)
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
func lists[T any](l *Loaders, db bun.IDB, f func(context.Context, bun.IDB, models.Scope, []uuid.UUID) (map[uuid.UUID][]*T, error)) func(context.Context, []uuid.UUID) (map[uuid.UUID][]*T, error) {
	fetch := byIDs(db, f)
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
			pages, err := f(ctx, db, scope, groups[a], pa.Filter, models.ListArgs{First: pa.First, After: pa.After, IncludeDeleted: pa.IncludeDeleted})
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

// WithLoaders returns ctx carrying l.
func WithLoaders(ctx context.Context, l *Loaders) context.Context {
	return context.WithValue(ctx, ctxLoadersKey{}, l)
}

// loaders returns the loaders of the current response. Outside a response
// (which LoaderExtension always provides) it returns fresh, uncached ones.
func (r *Resolver) loaders(ctx context.Context) *Loaders {
	if l, ok := ctx.Value(ctxLoadersKey{}).(*Loaders); ok {
		return l
	}
	return NewLoaders(r.DB)
}

// LoaderExtension gives every response its own loaders: each HTTP request,
// and each event of a subscription (a loader made at websocket upgrade
// would cache rows for the connection's life).
type LoaderExtension struct{ DB bun.IDB }

var _ interface {
	graphql.HandlerExtension
	graphql.ResponseInterceptor
} = LoaderExtension{}

func (LoaderExtension) ExtensionName() string                   { return "BrokkrLoaders" }
func (LoaderExtension) Validate(graphql.ExecutableSchema) error { return nil }
func (e LoaderExtension) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	return next(WithLoaders(ctx, NewLoaders(e.DB)))
}

// A cohort is the set of rows one statement returned (a top-level page,
// or one batch of a loader). gqlgen resolves the children of a list in
// concurrent goroutines, spread over more time than any loader wait when
// the list is long; so the first member of a cohort to resolve an edge
// enqueues that edge's keys for every member at once, and the rest find
// their results cached. That makes the statement count of a query depend
// on its shape only, never on timing or row counts.
type cohorts struct {
	mu     sync.Mutex
	of     map[any]*cohort
	primed map[primeKey]bool
}

type cohort struct{ members []any }

type primeKey struct {
	c      *cohort
	loader any
	args   string
}

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

// siblings returns n's cohort the first time one of its members resolves
// the edge served by loader with args; nil afterwards, or without a cohort.
func siblings[P any](l *Loaders, n *P, loader any, args string) []*P {
	l.cohorts.mu.Lock()
	defer l.cohorts.mu.Unlock()
	c := l.cohorts.of[n]
	if c == nil {
		return nil
	}
	k := primeKey{c: c, loader: loader, args: args}
	if l.cohorts.primed[k] {
		return nil
	}
	if l.cohorts.primed == nil {
		l.cohorts.primed = map[primeKey]bool{}
	}
	l.cohorts.primed[k] = true
	out := make([]*P, 0, len(c.members))
	for _, m := range c.members {
		if p, ok := m.(*P); ok {
			out = append(out, p)
		}
	}
	return out
}

// listed registers a top-level page's nodes as a cohort and returns it.
func listed[T any](r *Resolver, ctx context.Context, p *models.Page[T]) *models.Page[T] {
	register(r.loaders(ctx), p.Nodes)
	return p
}

// load is Load after enqueuing the same edge for n's cohort.
func load[P any, K comparable, V any](ctx context.Context, l *Loaders, loader *dataloadgen.Loader[K, V], n *P, key func(*P) K, args string) (V, error) {
	if sib := siblings(l, n, loader, args); sib != nil {
		keys := make([]K, len(sib))
		for i, s := range sib {
			keys[i] = key(s)
		}
		loader.LoadAllThunk(ctx, keys) // enqueue only; results are cached
	}
	return loader.Load(ctx, key(n))
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
