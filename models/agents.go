package models

import (
	"context"
	"database/sql"
	"errors"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/brokkr/brokkr/apikey"
)

// CreateAgent creates an INACTIVE agent with its key, labels and
// annotations in one transaction (admins only).
func CreateAgent(ctx context.Context, db bun.IDB, scope Scope, in CreateAgentInput) (*AgentWithKey, error) {
	const name = "CreateAgent"
	if err := requireRole(scope, "creating agents", RoleAdmin); err != nil {
		return nil, op(name, "agent", err)
	}
	if err := validateName("name", in.Name); err != nil {
		return nil, op(name, "agent", err)
	}
	if err := validateName("clusterName", in.ClusterName); err != nil {
		return nil, op(name, "agent", err)
	}
	if err := validateLabels(in.Labels, in.Annotations); err != nil {
		return nil, op(name, "agent", err)
	}
	key, hash, err := apikey.New("agent")
	if err != nil {
		return nil, op(name, "agent", err)
	}
	a := &Agent{Name: in.Name, ClusterName: in.ClusterName, Status: AgentStatusInactive, PakHash: &hash}
	err = db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(a).Returning("*").Exec(ctx); err != nil {
			return err
		}
		if len(in.Labels) > 0 {
			rows := make([]*AgentLabel, len(in.Labels))
			for i, l := range in.Labels {
				rows[i] = &AgentLabel{AgentID: a.ID, Label: l}
			}
			if _, err := tx.NewInsert().Model(&rows).Exec(ctx); err != nil {
				return err
			}
		}
		if len(in.Annotations) > 0 {
			rows := make([]*AgentAnnotation, len(in.Annotations))
			for i, an := range in.Annotations {
				rows[i] = &AgentAnnotation{AgentID: a.ID, Key: an.Key, Value: an.Value}
			}
			if _, err := tx.NewInsert().Model(&rows).Exec(ctx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, op(name, "agent", err)
	}
	return &AgentWithKey{Agent: a, APIKey: key}, nil
}

// GetAgent returns one visible agent.
func GetAgent(ctx context.Context, db bun.IDB, scope Scope, id uuid.UUID, includeDeleted bool) (*Agent, error) {
	if err := checkIncludeDeleted(scope, includeDeleted); err != nil {
		return nil, op("GetAgent", "agent", err)
	}
	a := new(Agent)
	q := db.NewSelect().Model(a).Where("a.id = ?", id)
	q = where(q, agentScope(scope, "a"))
	q = where(q, liveCond("a", includeDeleted))
	if err := q.Scan(ctx); err != nil {
		return nil, op("GetAgent", "agent", err)
	}
	return a, nil
}

// agentListConds are the conditions of an agent list over a: scope,
// liveness and the filter (Forbidden for includeDeleted without admin,
// Invalid for filter lists past their caps, in that order).
func agentListConds(scope Scope, filter *AgentFilter, includeDeleted bool) ([]cond, error) {
	if err := checkIncludeDeleted(scope, includeDeleted); err != nil {
		return nil, err
	}
	cs := []cond{agentScope(scope, "a"), liveCond("a", includeDeleted)}
	if filter == nil {
		return cs, nil
	}
	if err := checkFilterLists(filter.Labels, filter.Annotations); err != nil {
		return nil, err
	}
	if filter.Name != nil {
		cs = append(cs, cond{sql: "a.name = ?", args: []any{*filter.Name}})
	}
	if filter.ClusterName != nil {
		cs = append(cs, cond{sql: "a.cluster_name = ?", args: []any{*filter.ClusterName}})
	}
	if filter.Status != nil {
		cs = append(cs, cond{sql: "a.status = ?", args: []any{string(*filter.Status)}})
	}
	return append(cs, hasAllLabels("a", "agent_labels", "agent_id", filter.Labels),
		hasAllAnnotations("a", "agent_annotations", "agent_id", filter.Annotations)), nil
}

// ListAgents lists visible agents in (created_at, id) order. Labels and
// annotations in the filter match agents that have all of them.
func ListAgents(ctx context.Context, db bun.IDB, scope Scope, filter *AgentFilter, args ListArgs) (*Page[Agent], error) {
	cs, err := agentListConds(scope, filter, args.IncludeDeleted)
	if err != nil {
		return nil, op("ListAgents", "agent", err)
	}
	q := whereAll(db.NewSelect().Model((*Agent)(nil)), cs)
	p, err := single(runPage[Agent, agentRow](ctx, db, q, agentPage, args, nil))
	return p, op("ListAgents", "agent", err)
}

// UpdateAgent changes the given fields: admins any, an agent its own name
// and cluster name (setting a status is Forbidden for it: only admins
// activate agents); generators none (Forbidden).
func UpdateAgent(ctx context.Context, db bun.IDB, scope Scope, in UpdateAgentInput) (*Agent, error) {
	const name = "UpdateAgent"
	if err := requireRole(scope, "updating agents", RoleAdmin, RoleAgent); err != nil {
		return nil, op(name, "agent", err)
	}
	if in.Status != nil && !scope.IsAdmin() {
		return nil, op(name, "agent", Forbidden("only admins change an agent's status"))
	}
	a := new(Agent)
	q := db.NewUpdate().Model(a).Where("a.id = ?", in.ID).Where("a.deleted_at IS NULL")
	q = where(q, agentScope(scope, "a"))
	set := false
	if in.Name != nil {
		if err := validateName("name", *in.Name); err != nil {
			return nil, op(name, "agent", err)
		}
		q, set = q.Set("name = ?", *in.Name), true
	}
	if in.ClusterName != nil {
		if err := validateName("clusterName", *in.ClusterName); err != nil {
			return nil, op(name, "agent", err)
		}
		q, set = q.Set("cluster_name = ?", *in.ClusterName), true
	}
	if in.Status != nil {
		if *in.Status != AgentStatusActive && *in.Status != AgentStatusInactive {
			return nil, op(name, "agent", Invalid("status", "status must be ACTIVE or INACTIVE"))
		}
		q, set = q.Set("status = ?", string(*in.Status)), true
	}
	if !set {
		return GetAgent(ctx, db, scope, in.ID, false)
	}
	if err := q.Returning("*").Scan(ctx); err != nil {
		return nil, op(name, "agent", err)
	}
	return a, nil
}

// RotateAgentKey replaces an agent's key (admins, or the agent itself); the
// old key stops working at once.
func RotateAgentKey(ctx context.Context, db bun.IDB, scope Scope, id uuid.UUID) (*AgentWithKey, error) {
	const name = "RotateAgentKey"
	if err := requireRole(scope, "rotating agent keys", RoleAdmin, RoleAgent); err != nil {
		return nil, op(name, "agent", err)
	}
	key, hash, err := apikey.New("agent")
	if err != nil {
		return nil, op(name, "agent", err)
	}
	a := new(Agent)
	q := db.NewUpdate().Model(a).Set("pak_hash = ?", hash).Where("a.id = ?", id).Where("a.deleted_at IS NULL")
	if err := where(q, agentScope(scope, "a")).Returning("*").Scan(ctx); err != nil {
		return nil, op(name, "agent", err)
	}
	return &AgentWithKey{Agent: a, APIKey: key}, nil
}

// DeleteAgent soft-deletes an agent (and its events), or removes it with its
// targets, events, labels and annotations when hard. Admins only. Returns
// the agent after a soft delete, or as it was before a hard one.
func DeleteAgent(ctx context.Context, db bun.IDB, scope Scope, id uuid.UUID, hard bool) (*Agent, error) {
	const name = "DeleteAgent"
	if err := requireRole(scope, "deleting agents", RoleAdmin); err != nil {
		return nil, op(name, "agent", err)
	}
	a := new(Agent)
	var err error
	if hard {
		err = db.NewDelete().Model(a).Where("a.id = ?", id).Returning("*").Scan(ctx)
	} else {
		err = db.NewUpdate().Model(a).Set("deleted_at = now()").
			Where("a.id = ?", id).Where("a.deleted_at IS NULL").Returning("*").Scan(ctx)
	}
	if err != nil {
		return nil, op(name, "agent", err)
	}
	return a, nil
}

// RestoreAgent undoes a soft delete and its cascade (admins only).
// Restoring a live agent is Invalid("id").
func RestoreAgent(ctx context.Context, db bun.IDB, scope Scope, id uuid.UUID) (*Agent, error) {
	const name = "RestoreAgent"
	if err := requireRole(scope, "restoring agents", RoleAdmin); err != nil {
		return nil, op(name, "agent", err)
	}
	a := new(Agent)
	err := db.NewUpdate().Model(a).Set("deleted_at = NULL").
		Where("a.id = ?", id).Where("a.deleted_at IS NOT NULL").Returning("*").Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		if _, gerr := GetAgent(ctx, db, scope, id, false); gerr == nil {
			return nil, op(name, "agent", Invalid("id", "agent is not deleted"))
		}
	}
	if err != nil {
		return nil, op(name, "agent", err)
	}
	return a, nil
}

// writableAgent checks that the scope may change the agent's labels and
// annotations (admins only) and that the agent is live, share-locking its
// row until the transaction ends.
func writableAgent(ctx context.Context, db bun.IDB, scope Scope, id uuid.UUID) (*Agent, error) {
	if err := requireRole(scope, "changing agent labels and annotations", RoleAdmin); err != nil {
		return nil, err
	}
	a := new(Agent)
	q := db.NewSelect().Model(a).Where("a.id = ?", id).Where("a.deleted_at IS NULL").For("SHARE")
	if err := where(q, agentScope(scope, "a")).Scan(ctx); err != nil {
		return nil, Translate(err, "agent")
	}
	return a, nil
}

// AddAgentLabel adds a label (admins only; Conflict when present).
func AddAgentLabel(ctx context.Context, db bun.IDB, scope Scope, agentID uuid.UUID, label string) (*Agent, error) {
	return agentTags.addLabel(ctx, db, scope, "AddAgentLabel", agentID, label)
}

// RemoveAgentLabel removes a label (NotFound when absent).
func RemoveAgentLabel(ctx context.Context, db bun.IDB, scope Scope, agentID uuid.UUID, label string) (*Agent, error) {
	return agentTags.removeLabel(ctx, db, scope, "RemoveAgentLabel", agentID, label)
}

// SetAgentAnnotation sets key = value, replacing any value of that key.
func SetAgentAnnotation(ctx context.Context, db bun.IDB, scope Scope, agentID uuid.UUID, key, value string) (*Agent, error) {
	return agentTags.setAnnotation(ctx, db, scope, "SetAgentAnnotation", agentID, key, value)
}

// RemoveAgentAnnotation removes the key (NotFound when absent).
func RemoveAgentAnnotation(ctx context.Context, db bun.IDB, scope Scope, agentID uuid.UUID, key string) (*Agent, error) {
	return agentTags.removeAnnotation(ctx, db, scope, "RemoveAgentAnnotation", agentID, key)
}

// AgentHeartbeat records that the calling agent is alive (agents only):
// last_heartbeat = now().
func AgentHeartbeat(ctx context.Context, db bun.IDB, scope Scope) (*Agent, error) {
	const name = "AgentHeartbeat"
	if err := requireRole(scope, "heartbeats", RoleAgent); err != nil {
		return nil, op(name, "agent", err)
	}
	a := new(Agent)
	err := db.NewUpdate().Model(a).Set("last_heartbeat = now()").
		Where("a.id = ?", scope.AgentID).Where("a.deleted_at IS NULL").Returning("*").Scan(ctx)
	if err != nil {
		return nil, op(name, "agent", err)
	}
	return a, nil
}
