package api

import (
	"context"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/brokkr/brokkr/auth"
)

// observer is the gqlgen extension that watches every operation and every
// answer, for the metrics (operations by type, errors by code, open
// subscriptions by root field) and the access log (operation name and
// type, principal, error codes). It is the first extension, so that it sees
// the answers the others give instead of running the operation (the
// guard's RATE_LIMITED and UNAUTHENTICATED refusals).
type observer struct {
	m *metrics
	// ends runs a function when an operation the websocket transport
	// dispatched ends: a subscription there keeps no context of its own
	// whose end would tell (wstransport.Transport.OnEnd).
	ends interface {
		OnEnd(*graphql.OperationContext, func()) bool
	}
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationInterceptor
	graphql.ResponseInterceptor
} = observer{}

func (observer) ExtensionName() string                   { return "BrokkrObserver" }
func (observer) Validate(graphql.ExecutableSchema) error { return nil }

type seenKey struct{}

// InterceptOperation counts the operation, keeps a subscription counted
// while it runs (until the websocket transport ends it: the client stopped
// it, it completed, or its connection closed; elsewhere until its context
// ends), and observes each answer that
// comes out of it, whether the executor made it (InterceptResponse sees it
// first and says so) or an extension after this one did.
func (o observer) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	oc := graphql.GetOperationContext(ctx)
	if oc != nil && oc.Operation != nil {
		o.m.operations.WithLabelValues(string(oc.Operation.Operation)).Inc()
		if oc.Operation.Operation == ast.Subscription {
			g := o.m.subscriptions.WithLabelValues(rootField(oc))
			g.Inc()
			if o.ends == nil || !o.ends.OnEnd(oc, g.Dec) {
				context.AfterFunc(ctx, g.Dec)
			}
		}
	}
	responses := next(ctx)
	return func(ctx context.Context) *graphql.Response {
		seen := new(bool)
		resp := responses(context.WithValue(ctx, seenKey{}, seen))
		if resp != nil && !*seen {
			o.observe(ctx, resp)
		}
		return resp
	}
}

// InterceptResponse observes the executor's answers, and those of
// requests refused before an operation ran (parse and validation errors,
// the transports' refusals: gqlgen's DispatchError).
func (o observer) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	if seen, ok := ctx.Value(seenKey{}).(*bool); ok {
		*seen = true
	}
	if resp != nil {
		o.observe(ctx, resp)
	}
	return resp
}

func (o observer) observe(ctx context.Context, resp *graphql.Response) {
	codes := make([]string, 0, len(resp.Errors))
	for _, e := range resp.Errors {
		code, _ := e.Extensions["code"].(string)
		if code == "" {
			code = "UNKNOWN"
		}
		o.m.errors.WithLabelValues(code).Inc()
		codes = append(codes, code)
	}
	a := accessFor(ctx)
	if a == nil || a.websocket {
		return // an operation over a websocket
	}
	var name, typ string
	if graphql.HasOperationContext(ctx) {
		oc := graphql.GetOperationContext(ctx)
		name = oc.OperationName
		if oc.Operation != nil {
			typ = string(oc.Operation.Operation)
			if name == "" {
				name = oc.Operation.Name
			}
		}
	}
	scope, authed := auth.ForContext(ctx)
	a.graphql(scope, authed, name, typ, codes)
}

// rootField is the root field a subscription selects (a subscription
// selects exactly one), its kind in the metrics.
func rootField(oc *graphql.OperationContext) string {
	for _, f := range graphql.CollectFields(oc, oc.Operation.SelectionSet, []string{"Subscription"}) {
		if !strings.HasPrefix(f.Name, "__") {
			return f.Name
		}
	}
	return "unknown"
}
