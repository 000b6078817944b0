package models

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"
)

// What the read planner (package graph/readplan) builds its statements
// from: the scoping rules, liveness, filters, orders and cursors of this
// package, exported as they are, so that tenancy and pagination have one
// source (DESIGN §8: one tenancy boundary). The planner chooses the columns
// and the shape of each statement (per-parent LATERAL pages, parameters);
// what a scope may see is decided here, by the same functions the models
// queries use.
//
// Conditions are over fixed aliases, the models' own: g (generators),
// s (stacks), d (deployment_objects), a (agents), e (agent_events),
// t (agent_targets).

// Cond is a SQL condition (or a subquery), written with bun's ?
// placeholders, and its arguments in order. An argument is a plain value,
// or a TextArray.
type Cond struct {
	SQL  string
	Args []any
}

func exported(cs []cond) []Cond {
	out := make([]Cond, len(cs))
	for i, c := range cs {
		out[i] = Cond{SQL: c.sql, Args: c.args}
	}
	return out
}

// Table is one of the tables the planner reads objects from.
type Table int

const (
	Generators Table = iota
	Stacks
	DeploymentObjects
	Agents
	AgentEvents
	AgentTargets
)

var tableScopes = [...]func(Scope, string) cond{
	Generators: generatorScope, Stacks: stackScope, DeploymentObjects: deploymentObjectScope,
	Agents: agentScope, AgentEvents: agentEventScope, AgentTargets: agentTargetScope,
}

var tableAliases = [...]string{Generators: "g", Stacks: "s", DeploymentObjects: "d", Agents: "a", AgentEvents: "e", AgentTargets: "t"}

// Alias is the alias the conditions of t use.
func (t Table) Alias() string { return tableAliases[t] }

// ScopeOf is the scope's condition on t seen through alias (the rule of
// scoping.go).
func ScopeOf(s Scope, t Table, alias string) Cond {
	c := tableScopes[t](s, alias)
	return Cond{SQL: c.sql, Args: c.args}
}

// GetConds are the conditions of reading one object of t by id (the
// Get… functions): scope and liveness; Forbidden for includeDeleted without
// admin. The object is NotFound(what) when they leave nothing.
func GetConds(s Scope, t Table, includeDeleted bool) ([]Cond, error) {
	if err := checkIncludeDeleted(s, includeDeleted); err != nil {
		return nil, err
	}
	a := t.Alias()
	return exported([]cond{tableScopes[t](s, a), liveCond(a, includeDeleted)}), nil
}

// ByIDConds are the conditions of the parent edges (a stack's generator,
// an event's agent, …: the …ByIDs functions): scope, and liveness except
// for admins.
func ByIDConds(s Scope, t Table, alias string) []Cond {
	return exported([]cond{tableScopes[t](s, alias), liveCond(alias, s.IsAdmin())})
}

// The conditions of each kind of list (the List… functions and the nested
// pages): scope, liveness and filter, or the error those functions answer
// before reading (Forbidden for includeDeleted without admin, then Invalid
// for filter lists past their caps).

func GeneratorListConds(s Scope, f *GeneratorFilter, includeDeleted bool) ([]Cond, error) {
	cs, err := generatorListConds(s, f, includeDeleted)
	return exported(cs), err
}

func StackListConds(s Scope, f *StackFilter, includeDeleted bool) ([]Cond, error) {
	cs, err := stackListConds(s, f, includeDeleted)
	return exported(cs), err
}

func DeploymentObjectListConds(s Scope, f *DeploymentObjectFilter, includeDeleted bool) ([]Cond, error) {
	cs, err := objectListConds(s, f, includeDeleted)
	return exported(cs), err
}

func AgentListConds(s Scope, f *AgentFilter, includeDeleted bool) ([]Cond, error) {
	cs, err := agentListConds(s, f, includeDeleted)
	return exported(cs), err
}

func AgentEventListConds(s Scope, f *AgentEventFilter, includeDeleted bool) ([]Cond, error) {
	cs, err := eventListConds(s, f, includeDeleted)
	return exported(cs), err
}

// VisibleStackIDs is the subquery of the stacks whose labels and
// annotations the scope sees; VisibleAgentIDs the same for agents.
func VisibleStackIDs(s Scope) Cond { c := visibleStackIDs(s); return Cond{SQL: c.sql, Args: c.args} }
func VisibleAgentIDs(s Scope) Cond { c := visibleAgentIDs(s); return Cond{SQL: c.sql, Args: c.args} }

// LatestObjectConds limit deployment objects over d to those a stack's
// latestDeploymentObject is chosen from (the newest by sequence).
func LatestObjectConds(s Scope) []Cond { return exported(latestObjectConds(s)) }

// DesiredStateFrom is the FROM clause of agents' desired states (targets
// t, agents a, objects d; see DesiredStatesByAgents), and
// DesiredStateConds its scope.
const DesiredStateFrom = desiredStateFrom

func DesiredStateConds(s Scope) []Cond { return exported(desiredStateConds(s)) }

// PageOrder is the order of one kind of list, which is also the kind of
// its cursors.
type PageOrder struct{ o order }

var (
	// ByCreated: generators, stacks, agents ((created_at, id) ascending).
	ByCreated = PageOrder{byCreatedAsc}
	// BySequence: deployment objects (sequence_id descending).
	BySequence = PageOrder{bySequenceDesc}
	// ByCreatedDesc: agent events ((created_at DESC, id)).
	ByCreatedDesc = PageOrder{byCreatedDesc}
)

// OrderBy is the ORDER BY list of the order over alias.
func (p PageOrder) OrderBy(alias string) string { return orderBy(p.o, alias) }

// After is the condition "strictly after the cursor" over alias (TRUE
// without one); Invalid("after") when it is not a cursor of this order.
func (p PageOrder) After(alias string, cursor *string) (Cond, error) {
	if cursor == nil {
		return Cond{SQL: condTrue.sql}, nil
	}
	k, err := decodeCursor(p.o, *cursor)
	if err != nil {
		return Cond{}, err
	}
	c := afterCond(p.o, alias, &k)
	return Cond{SQL: c.sql, Args: c.args}, nil
}

// Cursor is the cursor of a row with this sort key (seq for BySequence,
// createdAt and id otherwise).
func (p PageOrder) Cursor(createdAt time.Time, id uuid.UUID, seq int64) string {
	return encodeCursor(p.o, cursorKey{at: createdAt, id: id, seq: seq})
}

// PageSize resolves a list's first (DefaultFirst when nil); Invalid("first")
// out of range.
func PageSize(first *int) (int, error) { return pageFirst(ListArgs{First: first}) }

// ReadPgx runs fn, a read, on a pooled connection of db through pgx itself
// (as scanPrepared does): once more on another connection when nothing was
// sent or the connection died under it, so fn must be safe to run twice.
func ReadPgx(ctx context.Context, db *bun.DB, fn func(*pgx.Conn) error) error {
	return withPgx(ctx, db.DB, reads, fn)
}
