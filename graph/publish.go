package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// wakesFeed are the mutations after which the subscription hub has
// something to deliver: deployment objects and deletion markers (objects,
// stacks, generators), targets, an agent's status, key or deletion, agent
// events. Every other mutation is in quietForFeed; a test checks that each
// of the schema's mutations is in one of the two.
var wakesFeed = map[string]bool{
	"deleteGenerator": true, "restoreGenerator": true,
	"deleteStack": true, "restoreStack": true,
	"createDeploymentObject": true, "rollbackStack": true, "deleteDeploymentObject": true,
	"updateAgent": true, "rotateAgentKey": true, "deleteAgent": true, "restoreAgent": true,
	"addAgentTarget": true, "removeAgentTarget": true,
	"reportAgentEvent": true,
}

// quietForFeed are the mutations that change nothing a subscriber receives
// at once (a generator's key or status reaches the dashboards it watches
// through the database's notification, as does the admin key).
var quietForFeed = map[string]bool{
	"createGenerator": true, "updateGenerator": true, "rotateGeneratorKey": true,
	"createStack": true, "updateStack": true,
	"addStackLabel": true, "removeStackLabel": true, "setStackAnnotation": true, "removeStackAnnotation": true,
	"createAgent": true, "agentHeartbeat": true, "rotateAdminKey": true,
	"addAgentLabel": true, "removeAgentLabel": true, "setAgentAnnotation": true, "removeAgentAnnotation": true,
}

// FeedWake wakes the subscription hub (Feed.Published) after each mutation
// of wakesFeed that committed, as soon as it has run (before the next
// mutation of the same request): the one place where mutations tell the
// feed. It is a wake-up for this process's hub, which then reads what
// changed from the tables; other replicas are woken by the database's
// NOTIFY (migration 0003), whoever wrote.
type FeedWake struct {
	Feed Feed // nil: nothing to wake
}

var _ interface {
	graphql.HandlerExtension
	graphql.RootFieldInterceptor
} = FeedWake{}

func (FeedWake) ExtensionName() string                   { return "BrokkrFeedWake" }
func (FeedWake) Validate(graphql.ExecutableSchema) error { return nil }

// InterceptRootField runs a root field and, when it is a mutation of
// wakesFeed that answered a value (a refused or failed mutation answers
// null: it did not commit), wakes the feed.
func (w FeedWake) InterceptRootField(ctx context.Context, next graphql.RootResolver) graphql.Marshaler {
	res := next(ctx)
	if w.Feed == nil || res == graphql.Null {
		return res
	}
	oc := graphql.GetOperationContext(ctx)
	fc := graphql.GetRootFieldContext(ctx)
	if oc.Operation != nil && oc.Operation.Operation == ast.Mutation && fc != nil && wakesFeed[fc.Field.Name] {
		w.Feed.Published(ctx)
	}
	return res
}
