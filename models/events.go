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

func eventListQuery(db bun.IDB, scope Scope, filter *AgentEventFilter, args ListArgs) (*bun.SelectQuery, error) {
	if err := checkIncludeDeleted(scope, args.IncludeDeleted); err != nil {
		return nil, err
	}
	q := db.NewSelect().Model((*AgentEvent)(nil))
	q = where(q, agentEventScope(scope, "e"))
	q = where(q, liveCond("e", args.IncludeDeleted))
	if filter != nil {
		if filter.AgentID != nil {
			q = q.Where("e.agent_id = ?", *filter.AgentID)
		}
		if filter.DeploymentObjectID != nil {
			q = q.Where("e.deployment_object_id = ?", *filter.DeploymentObjectID)
		}
		if filter.StackID != nil {
			q = q.Where("e.deployment_object_id IN (SELECT f_d.id FROM deployment_objects AS f_d WHERE f_d.stack_id = ?)", *filter.StackID)
		}
		if filter.EventType != nil {
			q = q.Where("e.event_type = ?", *filter.EventType)
		}
		if filter.Status != nil {
			q = q.Where("e.status = ?", *filter.Status)
		}
	}
	return q, nil
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
	sc := deploymentObjectScope(scope, "d")
	va := visibleAgentIDs(scope)
	if budget.Passed() {
		return nil, op("DesiredStatesByAgents", "agent", ErrRowBudget)
	}
	args := append(append([]any{bun.List(agentIDs)}, va.args...), sc.args...)
	limit := ""
	if n := budget.Limit(); n > 0 {
		limit = " LIMIT ?"
		args = append(args, n)
	}
	var rows []desiredRow
	err := db.NewRaw(`SELECT DISTINCT ON (t.agent_id, d.stack_id) d.*, t.agent_id AS _for_agent
		FROM agent_targets AS t
		JOIN agents AS a ON a.id = t.agent_id AND a.status = 'ACTIVE' AND a.deleted_at IS NULL
		JOIN deployment_objects AS d ON d.stack_id = t.stack_id AND d.deleted_at IS NULL
		WHERE t.agent_id IN (?) AND t.agent_id IN (`+va.sql+`) AND (`+sc.sql+`)
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
