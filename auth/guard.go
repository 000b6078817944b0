package auth

import (
	"context"
	"slices"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/brokkr/brokkr/models"
)

// Per-operation authentication and authorization, as gqlgen handler
// extensions: Guard for every operation, HasRole for @hasRole.

// HasRole implements @hasRole: the caller must be authenticated and hold
// one of roles. What a role may see and touch within that is the models
// scope's business.
func HasRole(ctx context.Context, _ any, next graphql.Resolver, roles []models.Role) (any, error) {
	s, ok := ForContext(ctx)
	if !ok {
		return nil, Failure(ctx)
	}
	if !slices.Contains(roles, s.Role) {
		names := make([]string, len(roles))
		for i, r := range roles {
			names[i] = string(r)
		}
		return nil, models.Forbidden("this field requires the role %s", strings.Join(names, " or "))
	}
	return next(ctx)
}

// Guard is the per-operation gate: every root field but introspection needs
// an authenticated caller (UNAUTHENTICATED otherwise); an operation sent over
// a websocket re-checks the connection's key; each operation of a
// generator spends tokens from its rate limiter, one per mutation field it
// runs (Cost), and is refused whole, before any of it runs, when they are not
// there (RATE_LIMITED with retryAfter); and it refreshes last_active_at.
type Guard struct {
	Auth     *Authenticator // rechecks websocket keys per operation
	Limiter  *RateLimiter
	Activity *Activity
	// Presenter is the server's error presenter: the refusals are domain
	// errors, and it alone turns them into extensions.code.
	Presenter graphql.ErrorPresenterFunc
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationInterceptor
	graphql.RootFieldInterceptor
} = Guard{}

func (Guard) ExtensionName() string                   { return "BrokkrGuard" }
func (Guard) Validate(graphql.ExecutableSchema) error { return nil }

func (g Guard) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	scope, ok := ForContext(ctx)
	if !ok {
		return next(ctx)
	}
	if g.Auth != nil {
		if err := g.Auth.Recheck(ctx); err != nil {
			return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{g.Presenter(ctx, err)}})
		}
	}
	if err := g.Limiter.Spend(scope, Cost(graphql.GetOperationContext(ctx))); err != nil {
		return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{g.Presenter(ctx, err)}})
	}
	g.Activity.Touch(ctx, scope)
	return next(ctx)
}

func (g Guard) InterceptRootField(ctx context.Context, next graphql.RootResolver) graphql.Marshaler {
	if _, ok := ForContext(ctx); ok {
		return next(ctx)
	}
	if fc := graphql.GetRootFieldContext(ctx); fc != nil && strings.HasPrefix(fc.Field.Name, "__") {
		return next(ctx) // introspection needs no key
	}
	graphql.AddError(ctx, Failure(ctx))
	return graphql.Null
}

// Cost is the number of rate-limit tokens an operation spends: one per
// mutation field it will run (aliases count, fragments and @skip/@include
// are resolved exactly as the executor resolves them, since both collect the
// fields with graphql.CollectFields), and one for any other operation or a
// mutation that runs none.
func Cost(oc *graphql.OperationContext) int {
	if oc == nil || oc.Operation == nil || oc.Operation.Operation != ast.Mutation {
		return 1
	}
	n := 0
	for _, f := range graphql.CollectFields(oc, oc.Operation.SelectionSet, []string{"Mutation"}) {
		if !strings.HasPrefix(f.Name, "__") {
			n++
		}
	}
	return max(n, 1)
}
