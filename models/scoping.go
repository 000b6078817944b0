package models

import (
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// This file is the one place where tenancy is decided (DESIGN §4). Each
// function returns the WHERE condition that limits one table, seen through
// alias, to what the scope may see; every read and write in this package
// applies it in SQL. A row outside the scope is simply not there: callers
// answer NotFound, never Forbidden, so no tenant learns that another
// tenant's object exists. An unknown role sees nothing.
//
// Liveness (deleted_at) is separate: see liveCond.

// cond is a SQL condition with its bun placeholders' arguments.
type cond struct {
	sql  string
	args []any
}

var (
	condTrue  = cond{sql: "TRUE"}
	condFalse = cond{sql: "FALSE"}
)

// where adds c to any bun query with a Where method.
func where[Q interface{ Where(string, ...any) Q }](q Q, c cond) Q {
	return q.Where(c.sql, c.args...)
}

// whereAll adds every condition of cs to q.
func whereAll(q *bun.SelectQuery, cs []cond) *bun.SelectQuery {
	for _, c := range cs {
		q = where(q, c)
	}
	return q
}

func mk(format, alias string, args ...any) cond {
	return cond{sql: strings.ReplaceAll(format, "{a}", alias), args: args}
}

// agentStacks lists the stacks whose deployment objects an agent sees: those
// it targets while it is ACTIVE and live (deleted stacks included, for their
// deletion markers). agent is the agent's id in SQL: "?" (a placeholder) for
// one scope's agent, or a column for the feed, which reads many agents at
// once (FeedAgentStates); either way the rule is this one.
func agentStacks(agent string) string {
	return `SELECT sc_t.stack_id FROM agent_targets AS sc_t
	JOIN agents AS sc_a ON sc_a.id = sc_t.agent_id
	WHERE sc_t.agent_id = ` + agent + ` AND sc_a.status = 'ACTIVE' AND sc_a.deleted_at IS NULL`
}

// activeAgentStacks is agentStacks for one agent; its placeholder is the
// agent id.
var activeAgentStacks = agentStacks("?")

// ownLiveStacks lists a generator's live stacks; its placeholder is the
// generator id.
const ownLiveStacks = `SELECT sc_s.id FROM stacks AS sc_s
	WHERE sc_s.generator_id = ? AND sc_s.deleted_at IS NULL`

// generatorScope: admins all; a generator itself; agents none.
func generatorScope(s Scope, alias string) cond {
	switch s.Role {
	case RoleAdmin:
		return condTrue
	case RoleGenerator:
		return mk("{a}.id = ?", alias, s.GeneratorID)
	}
	return condFalse
}

// stackScope: admins all; a generator its own stacks; an agent the stacks it
// targets while it is ACTIVE.
func stackScope(s Scope, alias string) cond {
	switch s.Role {
	case RoleAdmin:
		return condTrue
	case RoleGenerator:
		return mk("{a}.generator_id = ?", alias, s.GeneratorID)
	case RoleAgent:
		return mk("{a}.id IN ("+activeAgentStacks+")", alias, s.AgentID)
	}
	return condFalse
}

// deploymentObjectScope: admins all; a generator the objects of its live
// stacks; an agent, while ACTIVE, the objects of the stacks it targets,
// including the deletion markers of targeted stacks that were deleted.
func deploymentObjectScope(s Scope, alias string) cond {
	switch s.Role {
	case RoleAdmin:
		return condTrue
	case RoleGenerator:
		return mk("{a}.stack_id IN ("+ownLiveStacks+")", alias, s.GeneratorID)
	case RoleAgent:
		return mk("{a}.stack_id IN ("+activeAgentStacks+")", alias, s.AgentID)
	}
	return condFalse
}

// agentScope: admins all; a generator the agents that target one of its live
// stacks (read only); an agent itself.
func agentScope(s Scope, alias string) cond {
	switch s.Role {
	case RoleAdmin:
		return condTrue
	case RoleGenerator:
		return mk(`{a}.id IN (SELECT sc_t.agent_id FROM agent_targets AS sc_t
			JOIN stacks AS sc_s ON sc_s.id = sc_t.stack_id
			WHERE sc_s.generator_id = ? AND sc_s.deleted_at IS NULL)`, alias, s.GeneratorID)
	case RoleAgent:
		return mk("{a}.id = ?", alias, s.AgentID)
	}
	return condFalse
}

// agentEventScope: admins all; a generator the events about objects of its
// live stacks; an agent its own events.
func agentEventScope(s Scope, alias string) cond {
	switch s.Role {
	case RoleAdmin:
		return condTrue
	case RoleGenerator:
		return mk(`{a}.deployment_object_id IN (SELECT sc_d.id FROM deployment_objects AS sc_d
			JOIN stacks AS sc_s ON sc_s.id = sc_d.stack_id
			WHERE sc_s.generator_id = ? AND sc_s.deleted_at IS NULL)`, alias, s.GeneratorID)
	case RoleAgent:
		return mk("{a}.agent_id = ?", alias, s.AgentID)
	}
	return condFalse
}

// agentTargetScope: admins all; a generator the targets of its live stacks;
// an agent its own targets (whatever its status).
func agentTargetScope(s Scope, alias string) cond {
	switch s.Role {
	case RoleAdmin:
		return condTrue
	case RoleGenerator:
		return mk("{a}.stack_id IN ("+ownLiveStacks+")", alias, s.GeneratorID)
	case RoleAgent:
		return mk("{a}.agent_id = ?", alias, s.AgentID)
	}
	return condFalse
}

// FeedAgentID is the agent whose feed (agentDeploymentObjects,
// agentTargetChanges) the scope may follow: an agent its own (agentID, if
// given, must be itself: NotFound otherwise), an admin the agent it names
// (Invalid without one), a generator none (Forbidden). Whether that agent
// exists is FeedAgent's question.
func FeedAgentID(s Scope, agentID *uuid.UUID) (uuid.UUID, error) {
	switch s.Role {
	case RoleAgent:
		if agentID != nil && *agentID != s.AgentID {
			return uuid.Nil, NotFound("agent")
		}
		return s.AgentID, nil
	case RoleAdmin:
		if agentID == nil || *agentID == uuid.Nil {
			return uuid.Nil, Invalid("agentId", "agentId is required for admins")
		}
		return *agentID, nil
	}
	return uuid.Nil, Forbidden("only agents and admins follow an agent's feed")
}

// visibleStackIDs is a subquery of the ids of the stacks the scope may see
// (live ones only, except for admins): the scope of labels and annotations.
func visibleStackIDs(s Scope) cond {
	c := stackScope(s, "vs")
	live := ""
	if !s.IsAdmin() {
		live = " AND vs.deleted_at IS NULL"
	}
	return cond{sql: "SELECT vs.id FROM stacks AS vs WHERE (" + c.sql + ")" + live, args: c.args}
}

// visibleAgentIDs is visibleStackIDs for agents.
func visibleAgentIDs(s Scope) cond {
	c := agentScope(s, "va")
	live := ""
	if !s.IsAdmin() {
		live = " AND va.deleted_at IS NULL"
	}
	return cond{sql: "SELECT va.id FROM agents AS va WHERE (" + c.sql + ")" + live, args: c.args}
}

// liveCond limits alias to live rows unless includeDeleted.
func liveCond(alias string, includeDeleted bool) cond {
	if includeDeleted {
		return condTrue
	}
	return cond{sql: alias + ".deleted_at IS NULL"}
}

// checkIncludeDeleted: only admins may read soft-deleted rows.
func checkIncludeDeleted(s Scope, includeDeleted bool) error {
	if includeDeleted && !s.IsAdmin() {
		return Forbidden("includeDeleted is for admins")
	}
	return nil
}

// requireRole answers Forbidden unless the scope has one of the roles.
func requireRole(s Scope, what string, roles ...Role) error {
	for _, r := range roles {
		if s.Role == r {
			return nil
		}
	}
	return Forbidden("%s is not allowed for this key", what)
}

// op wraps err (translated) with the operation's name.
func op(name, what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("models.%s: %w", name, Translate(err, what))
}
