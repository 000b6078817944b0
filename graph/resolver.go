// Package graph is Brokkr's GraphQL edge: gqlgen resolvers (thin), the error
// presenter, dataloaders and complexity limits.
package graph

import (
	"context"
	"log/slog"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/brokkr/brokkr/models"
)

// Feed is what the resolvers need from the subscription hub (package feed).
// Each subscription is a channel and its Stream: channels are owned and
// closed by the hub when ctx ends or the subscription is cut off (slow
// consumer, key rotation, agent deleted).
type Feed interface {
	// AgentDeploymentObjects streams the deployment objects of the stacks the
	// agent targets (DESIGN §5): replay after `after`, or the desired state
	// when after is nil, then live; each object exactly once, in sequence order.
	AgentDeploymentObjects(ctx context.Context, scope models.Scope, agentID uuid.UUID, after *int64) (<-chan *models.DeploymentObject, Stream, error)
	// AgentTargetChanges streams targets added to and removed from the agent.
	AgentTargetChanges(ctx context.Context, scope models.Scope, agentID uuid.UUID) (<-chan *models.AgentTargetChange, Stream, error)
	// StackDeploymentObjects streams one stack's deployment objects (dashboards).
	StackDeploymentObjects(ctx context.Context, scope models.Scope, stackID uuid.UUID, after *int64) (<-chan *models.DeploymentObject, Stream, error)
	// AgentEvents streams agent events matching the filter, within scope.
	AgentEvents(ctx context.Context, scope models.Scope, filter *models.AgentEventFilter) (<-chan *models.AgentEvent, Stream, error)
	// Published is called after a mutation that may have created deployment
	// objects, targets or agent changes has committed (FeedWake): a
	// wake-up, never data.
	Published(ctx context.Context)
}

// Stream is the wake-up side of a subscription's channel, which the
// resolver hands to the transport that dispatched the operation
// (Resolver.Streams). The same type as wstransport.Stream (an alias of one
// unnamed interface), where its contract is spelled out.
type Stream = interface {
	Notify(wake func(v any))
	Skip() bool
	Stop()
}

// Resolver holds the dependencies of every resolver; nothing else.
type Resolver struct {
	DB     *bun.DB
	Feed   Feed
	Logger *slog.Logger
	// Streams takes each subscription's Stream for the operation that made
	// it (wstransport.Transport.Take). Nil: nobody takes them, and
	// subscriptions are read by blocking on their channels.
	Streams func(*graphql.OperationContext, Stream)
}
