package models

import (
	"context"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// CreateAgent creates an INACTIVE agent with its key, labels and
// annotations (admins only).
func CreateAgent(ctx context.Context, db bun.IDB, scope Scope, in CreateAgentInput) (*AgentWithKey, error) {
	return nil, errNotYet
}

// GetAgent returns one visible agent.
func GetAgent(ctx context.Context, db bun.IDB, scope Scope, id uuid.UUID, includeDeleted bool) (*Agent, error) {
	return nil, errNotYet
}

// ListAgents lists visible agents in (created_at, id) order.
func ListAgents(ctx context.Context, db bun.IDB, scope Scope, filter *AgentFilter, args ListArgs) (*Page[Agent], error) {
	return nil, errNotYet
}

// UpdateAgent changes the given fields: admins any, an agent its own name
// and cluster name (not its status).
func UpdateAgent(ctx context.Context, db bun.IDB, scope Scope, in UpdateAgentInput) (*Agent, error) {
	return nil, errNotYet
}

// RotateAgentKey replaces an agent's key (admins, or the agent itself).
func RotateAgentKey(ctx context.Context, db bun.IDB, scope Scope, id uuid.UUID) (*AgentWithKey, error) {
	return nil, errNotYet
}

// DeleteAgent soft-deletes an agent (and its events), or removes it with
// everything under it when hard. Admins only.
func DeleteAgent(ctx context.Context, db bun.IDB, scope Scope, id uuid.UUID, hard bool) (*Agent, error) {
	return nil, errNotYet
}

// RestoreAgent undoes a soft delete (admins only).
func RestoreAgent(ctx context.Context, db bun.IDB, scope Scope, id uuid.UUID) (*Agent, error) {
	return nil, errNotYet
}

// AddAgentLabel adds a label (admins only; Conflict when present).
func AddAgentLabel(ctx context.Context, db bun.IDB, scope Scope, agentID uuid.UUID, label string) (*Agent, error) {
	return nil, errNotYet
}

// RemoveAgentLabel removes a label (NotFound when absent).
func RemoveAgentLabel(ctx context.Context, db bun.IDB, scope Scope, agentID uuid.UUID, label string) (*Agent, error) {
	return nil, errNotYet
}

// SetAgentAnnotation sets key = value, replacing any value of that key.
func SetAgentAnnotation(ctx context.Context, db bun.IDB, scope Scope, agentID uuid.UUID, key, value string) (*Agent, error) {
	return nil, errNotYet
}

// RemoveAgentAnnotation removes the key (NotFound when absent).
func RemoveAgentAnnotation(ctx context.Context, db bun.IDB, scope Scope, agentID uuid.UUID, key string) (*Agent, error) {
	return nil, errNotYet
}

// AgentHeartbeat records that the calling agent is alive (agents only).
func AgentHeartbeat(ctx context.Context, db bun.IDB, scope Scope) (*Agent, error) {
	return nil, errNotYet
}
