package models

import (
	"context"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// ReportAgentEvent records the calling agent's event about a deployment
// object of a stack it targets (agents only; other objects are NotFound).
func ReportAgentEvent(ctx context.Context, db bun.IDB, scope Scope, in ReportAgentEventInput) (*AgentEvent, error) {
	return nil, errNotYet
}

// ListAgentEvents lists visible events, newest first ((created_at DESC, id)).
func ListAgentEvents(ctx context.Context, db bun.IDB, scope Scope, filter *AgentEventFilter, args ListArgs) (*Page[AgentEvent], error) {
	return nil, errNotYet
}

// AgentEventsByIDs loads visible events by id (subscriptions, loaders).
func AgentEventsByIDs(ctx context.Context, db bun.IDB, scope Scope, ids []uuid.UUID) (map[uuid.UUID]*AgentEvent, error) {
	return nil, errNotYet
}

// DesiredState is the latest live deployment object of every stack the agent
// targets, in sequence order; empty while the agent is INACTIVE.
func DesiredState(ctx context.Context, db bun.IDB, scope Scope, agentID uuid.UUID) ([]*DeploymentObject, error) {
	return nil, errNotYet
}

// DesiredStatesByAgents is DesiredState for many agents in one statement.
func DesiredStatesByAgents(ctx context.Context, db bun.IDB, scope Scope, agentIDs []uuid.UUID) (map[uuid.UUID][]*DeploymentObject, error) {
	return nil, errNotYet
}
