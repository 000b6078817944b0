package models

import (
	"context"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// AddAgentTarget points an agent at a stack (admins, or a generator for its
// own live stacks: any live agent may be named; agents are Forbidden).
// NotFound when the stack is not writable or the agent does not exist;
// Conflict when the target exists.
func AddAgentTarget(ctx context.Context, db bun.IDB, scope Scope, agentID, stackID uuid.UUID) (*AgentTarget, error) {
	const name = "AddAgentTarget"
	if err := requireRole(scope, "targeting stacks", RoleAdmin, RoleGenerator); err != nil {
		return nil, op(name, "stack", err)
	}
	sc := stackScope(scope, "s")
	args := append([]any{agentID, stackID}, sc.args...)
	t := new(AgentTarget)
	err := db.NewRaw(`INSERT INTO agent_targets (agent_id, stack_id)
		SELECT ?, s.id FROM stacks AS s WHERE s.id = ? AND s.deleted_at IS NULL AND (`+sc.sql+`)
		RETURNING *`, args...).Scan(ctx, t)
	if err != nil {
		return nil, op(name, "stack", err)
	}
	return t, nil
}

// RemoveAgentTarget removes a target and returns it as it was (admins, or
// the generator owning the stack).
func RemoveAgentTarget(ctx context.Context, db bun.IDB, scope Scope, agentID, stackID uuid.UUID) (*AgentTarget, error) {
	const name = "RemoveAgentTarget"
	if err := requireRole(scope, "removing targets", RoleAdmin, RoleGenerator); err != nil {
		return nil, op(name, "agent target", err)
	}
	t := new(AgentTarget)
	q := db.NewDelete().Model(t).Where("t.agent_id = ?", agentID).Where("t.stack_id = ?", stackID)
	if err := where(q, agentTargetScope(scope, "t")).Returning("*").Scan(ctx); err != nil {
		return nil, op(name, "agent target", err)
	}
	return t, nil
}

// ListTargets lists visible targets, optionally of one agent and/or one
// stack, in (created_at, id) order.
func ListTargets(ctx context.Context, db bun.IDB, scope Scope, agentID, stackID *uuid.UUID) ([]*AgentTarget, error) {
	var ts []*AgentTarget
	q := db.NewSelect().Model(&ts)
	q = where(q, agentTargetScope(scope, "t"))
	if agentID != nil {
		q = q.Where("t.agent_id = ?", *agentID)
	}
	if stackID != nil {
		q = q.Where("t.stack_id = ?", *stackID)
	}
	if err := q.OrderExpr("t.created_at, t.id").Scan(ctx); err != nil {
		return nil, op("ListTargets", "agent target", err)
	}
	if ts == nil {
		ts = []*AgentTarget{}
	}
	return ts, nil
}
