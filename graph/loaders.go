package graph

import (
	"context"
	"encoding/json"
	"errors"
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
	return &Loaders{
		Generator:        dataloadgen.NewMappedLoader(byIDs(db, models.GeneratorsByIDs), w),
		Stack:            dataloadgen.NewMappedLoader(byIDs(db, models.StacksByIDs), w),
		DeploymentObject: dataloadgen.NewMappedLoader(byIDs(db, models.DeploymentObjectsByIDs), w),
		Agent:            dataloadgen.NewMappedLoader(byIDs(db, models.AgentsByIDs), w),

		StackLabels:      dataloadgen.NewMappedLoader(byIDs(db, models.LabelsByStacks), w),
		StackAnnotations: dataloadgen.NewMappedLoader(byIDs(db, models.AnnotationsByStacks), w),
		AgentLabels:      dataloadgen.NewMappedLoader(byIDs(db, models.LabelsByAgents), w),
		AgentAnnotations: dataloadgen.NewMappedLoader(byIDs(db, models.AnnotationsByAgents), w),
		TargetsByAgent:   dataloadgen.NewMappedLoader(byIDs(db, models.TargetsByAgents), w),
		TargetsByStack:   dataloadgen.NewMappedLoader(byIDs(db, models.TargetsByStacks), w),
		LatestByStack:    dataloadgen.NewMappedLoader(byIDs(db, models.LatestDeploymentObjectsByStacks), w),
		DesiredState:     dataloadgen.NewMappedLoader(byIDs(db, models.DesiredStatesByAgents), w),

		StacksByGenerator:        dataloadgen.NewMappedLoader(paged(db, models.StacksByGenerators), w),
		DeploymentObjectsByStack: dataloadgen.NewMappedLoader(paged(db, models.DeploymentObjectsByStacks), w),
		EventsByDeploymentObject: dataloadgen.NewMappedLoader(paged(db, models.EventsByDeploymentObjects), w),
		EventsByAgent:            dataloadgen.NewMappedLoader(paged(db, models.EventsByAgents), w),
	}
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

func paged[F, T any](db bun.IDB, f func(context.Context, bun.IDB, models.Scope, []uuid.UUID, *F, models.ListArgs) (map[uuid.UUID]*models.Page[T], error)) func(context.Context, []PageKey) (map[PageKey]*models.Page[T], error) {
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
			}
		}
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

// loadOne loads a parent edge; a row the caller may not see is NotFound.
func loadOne[V any](ctx context.Context, l *dataloadgen.Loader[uuid.UUID, V], id uuid.UUID, what string) (V, error) {
	v, err := l.Load(ctx, id)
	if errors.Is(err, dataloadgen.ErrNotFound) {
		return v, models.NotFound(what)
	}
	return v, err
}

// loadOptional loads a per-parent value where absence means "none".
func loadOptional[V any](ctx context.Context, l *dataloadgen.Loader[uuid.UUID, V], id uuid.UUID) (V, error) {
	v, err := l.Load(ctx, id)
	if errors.Is(err, dataloadgen.ErrNotFound) {
		var zero V
		return zero, nil
	}
	return v, err
}

// loadPage loads a nested page; a parent without one gets an empty page.
func loadPage[T any](ctx context.Context, l *dataloadgen.Loader[PageKey, *models.Page[T]], key PageKey) (*models.Page[T], error) {
	p, err := l.Load(ctx, key)
	if errors.Is(err, dataloadgen.ErrNotFound) {
		return &models.Page[T]{}, nil
	}
	return p, err
}
