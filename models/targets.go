package models

import (
	"context"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// AddAgentTarget points an agent at a stack (admins, or a generator for its
// own stacks: any live agent may be named).
func AddAgentTarget(ctx context.Context, db bun.IDB, scope Scope, agentID, stackID uuid.UUID) (*AgentTarget, error) {
	return nil, errNotYet
}

// RemoveAgentTarget removes a target and returns it as it was.
func RemoveAgentTarget(ctx context.Context, db bun.IDB, scope Scope, agentID, stackID uuid.UUID) (*AgentTarget, error) {
	return nil, errNotYet
}

// ListTargets lists visible targets, optionally of one agent and/or one
// stack, in (created_at, id) order.
func ListTargets(ctx context.Context, db bun.IDB, scope Scope, agentID, stackID *uuid.UUID) ([]*AgentTarget, error) {
	return nil, errNotYet
}
