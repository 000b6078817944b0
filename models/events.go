package models

import (
	"context"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// ReportAgentEvent records the calling agent's event about a live deployment
// object of a stack it targets while ACTIVE (agents only, as themselves;
// any other object is NotFound).
func ReportAgentEvent(ctx context.Context, db bun.IDB, scope Scope, in ReportAgentEventInput) (*AgentEvent, error) {
	const name = "ReportAgentEvent"
	if err := requireRole(scope, "reporting agent events", RoleAgent); err != nil {
		return nil, op(name, "deployment object", err)
	}
	if err := validateShort("eventType", in.EventType, 50); err != nil {
		return nil, op(name, "deployment object", err)
	}
	if err := validateShort("status", in.Status, 10); err != nil {
		return nil, op(name, "deployment object", err)
	}
	if in.Message != nil && len(*in.Message) > MaxEventMessageBytes {
		return nil, op(name, "deployment object", Invalid("message", "message must be at most %d bytes", MaxEventMessageBytes))
	}
	sc := deploymentObjectScope(scope, "d")
	args := append([]any{scope.AgentID, in.EventType, in.Status, in.Message, in.DeploymentObjectID}, sc.args...)
	e := new(AgentEvent)
	err := db.NewRaw(`INSERT INTO agent_events (agent_id, deployment_object_id, event_type, status, message)
		SELECT ?, d.id, ?, ?, ? FROM deployment_objects AS d
		WHERE d.id = ? AND d.deleted_at IS NULL AND (`+sc.sql+`)
		RETURNING *`, args...).Scan(ctx, e)
	if err != nil {
		return nil, op(name, "deployment object", err)
	}
	return e, nil
}

func validateShort(field, v string, max int) error {
	if err := validateName(field, v); err != nil {
		return err
	}
	if utf8.RuneCountInString(v) > max {
		return Invalid(field, "%s must be at most %d characters", field, max)
	}
	return nil
}

// eventListConds are the conditions of an agent-event list over e: scope,
// liveness and the filter.
func eventListConds(scope Scope, filter *AgentEventFilter, includeDeleted bool) ([]cond, error) {
	if err := checkIncludeDeleted(scope, includeDeleted); err != nil {
		return nil, err
	}
	cs := []cond{agentEventScope(scope, "e"), liveCond("e", includeDeleted)}
	if filter == nil {
		return cs, nil
	}
	for _, f := range []struct {
		sql string
		v   any
		set bool
	}{
		{"e.agent_id = ?", deref(filter.AgentID), filter.AgentID != nil},
		{"e.deployment_object_id = ?", deref(filter.DeploymentObjectID), filter.DeploymentObjectID != nil},
		{"e.deployment_object_id IN (SELECT f_d.id FROM deployment_objects AS f_d WHERE f_d.stack_id = ?)", deref(filter.StackID), filter.StackID != nil},
		{"e.event_type = ?", deref(filter.EventType), filter.EventType != nil},
		{"e.status = ?", deref(filter.Status), filter.Status != nil},
	} {
		if f.set {
			cs = append(cs, cond{sql: f.sql, args: []any{f.v}})
		}
	}
	return cs, nil
}

// deref is *p, or T's zero value for nil.
func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

func eventListQuery(db bun.IDB, scope Scope, filter *AgentEventFilter, args ListArgs) (*bun.SelectQuery, error) {
	cs, err := eventListConds(scope, filter, args.IncludeDeleted)
	if err != nil {
		return nil, err
	}
	return whereAll(db.NewSelect().Model((*AgentEvent)(nil)), cs), nil
}

// ListAgentEvents lists visible events, newest first ((created_at DESC, id)).
func ListAgentEvents(ctx context.Context, db bun.IDB, scope Scope, filter *AgentEventFilter, args ListArgs) (*Page[AgentEvent], error) {
	q, err := eventListQuery(db, scope, filter, args)
	if err != nil {
		return nil, op("ListAgentEvents", "agent event", err)
	}
	p, err := single(runPage[AgentEvent, agentEventRow](ctx, db, q, agentEventPage, args, nil))
	return p, op("ListAgentEvents", "agent event", err)
}

// AgentEventsByIDs loads visible events by id (subscriptions, loaders);
// admins get soft-deleted ones too.
func AgentEventsByIDs(ctx context.Context, db bun.IDB, scope Scope, ids []uuid.UUID) (map[uuid.UUID]*AgentEvent, error) {
	var es []*AgentEvent
	q := db.NewSelect().Model(&es).Where("e.id IN (?)", bun.List(ids))
	q = where(q, agentEventScope(scope, "e"))
	q = where(q, liveCond("e", scope.IsAdmin()))
	if err := q.Scan(ctx); err != nil {
		return nil, op("AgentEventsByIDs", "agent event", err)
	}
	out := make(map[uuid.UUID]*AgentEvent, len(es))
	for _, e := range es {
		out[e.ID] = e
	}
	return out, nil
}

// DesiredState is the latest live deployment object of every stack the agent
// targets (a deletion marker for a deleted stack), in sequence order; empty
// while the agent is INACTIVE. The agent must be visible (NotFound).
func DesiredState(ctx context.Context, db bun.IDB, scope Scope, agentID uuid.UUID) ([]*DeploymentObject, error) {
	if _, err := GetAgent(ctx, db, scope, agentID, false); err != nil {
		return nil, err
	}
	m, err := DesiredStatesByAgents(ctx, db, scope, []uuid.UUID{agentID}, nil)
	if err != nil {
		return nil, err
	}
	return m[agentID], nil
}

// desiredStateFrom is where agents' desired states are read from: their
// targets (t) while the agent (a) is ACTIVE and live, joined to the live
// deployment objects (d) of the targeted stacks. DISTINCT ON (t.agent_id,
// d.stack_id), ordered by sequence descending, keeps each stack's latest.
const desiredStateFrom = `agent_targets AS t
		JOIN agents AS a ON a.id = t.agent_id AND a.status = 'ACTIVE' AND a.deleted_at IS NULL
		JOIN deployment_objects AS d ON d.stack_id = t.stack_id AND d.deleted_at IS NULL`

// desiredStateConds limit desiredStateFrom to the scope: agents it sees,
// objects it sees.
func desiredStateConds(scope Scope) []cond {
	va := visibleAgentIDs(scope)
	return []cond{{sql: "t.agent_id IN (" + va.sql + ")", args: va.args}, deploymentObjectScope(scope, "d")}
}

// desiredRow is a deployment object with the agent it is desired for.
type desiredRow struct {
	DeploymentObject `bun:",extend"`
	ForAgent         uuid.UUID `bun:"_for_agent,scanonly"`
}

// DesiredStatesByAgents is DesiredState for many agents in one statement;
// every id gets a slice (empty for agents the scope cannot see).
func DesiredStatesByAgents(ctx context.Context, db bun.IDB, scope Scope, agentIDs []uuid.UUID, budget *RowBudget) (map[uuid.UUID][]*DeploymentObject, error) {
	out := make(map[uuid.UUID][]*DeploymentObject, len(agentIDs))
	for _, id := range agentIDs {
		out[id] = []*DeploymentObject{}
	}
	if len(agentIDs) == 0 {
		return out, nil
	}
	if budget.Passed() {
		return nil, op("DesiredStatesByAgents", "agent", ErrRowBudget)
	}
	cs := desiredStateConds(scope)
	args := append(append([]any{bun.List(agentIDs)}, cs[0].args...), cs[1].args...)
	limit := ""
	if n := budget.Limit(); n > 0 {
		limit = " LIMIT ?"
		args = append(args, n)
	}
	var rows []desiredRow
	err := db.NewRaw(`SELECT DISTINCT ON (t.agent_id, d.stack_id) d.*, t.agent_id AS _for_agent
		FROM `+desiredStateFrom+`
		WHERE t.agent_id IN (?) AND (`+cs[0].sql+`) AND (`+cs[1].sql+`)
		ORDER BY t.agent_id, d.stack_id, d.sequence_id DESC`+limit, args...).Scan(ctx, &rows)
	if err == nil {
		err = budget.Check(len(rows))
	}
	if err != nil {
		return nil, op("DesiredStatesByAgents", "agent", err)
	}
	for i := range rows {
		r := &rows[i]
		out[r.ForAgent] = append(out[r.ForAgent], &r.DeploymentObject)
	}
	for _, ds := range out {
		bySequence(ds)
	}
	return out, nil
}
