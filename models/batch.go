package models

import (
	"context"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// Batch queries behind the GraphQL layer's dataloaders: each runs ONE SQL
// statement whatever the number of keys, applies the scope, and returns
// results keyed by id (keys with nothing visible are absent from the map,
// except for the paged functions, where every key has a page).
//
// The functions that read lists (pages, labels, annotations, targets) take
// the response's row budget (in ListArgs for pages): their statement asks
// for at most the rows left plus one and answers ErrRowBudget when it got
// that many. Those reading rows by id need none: their keys bound them.
//
// The ...ByIDs functions serve parent edges (stack.generator, object.stack,
// event.agent, ...): admins get soft-deleted rows too (so an admin browsing
// deleted rows still sees their parents); other roles live rows only.

// byIDs loads rows of model type T whose id is in ids.
func byIDs[T any](ctx context.Context, db bun.IDB, name, alias string, c cond, ids []uuid.UUID, id func(*T) uuid.UUID, admin bool) (map[uuid.UUID]*T, error) {
	out := make(map[uuid.UUID]*T, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	var rows []*T
	q := db.NewSelect().Model(&rows).ColumnExpr(alias+".*").Where(alias+".id IN (?)", bun.List(ids))
	q = where(q, c)
	q = where(q, liveCond(alias, admin))
	if err := q.Scan(ctx); err != nil {
		return nil, op(name, "row", err)
	}
	for _, r := range rows {
		out[id(r)] = r
	}
	return out, nil
}

// GeneratorsByIDs loads visible generators by id.
func GeneratorsByIDs(ctx context.Context, db bun.IDB, scope Scope, ids []uuid.UUID) (map[uuid.UUID]*Generator, error) {
	return byIDs(ctx, db, "GeneratorsByIDs", "g", generatorScope(scope, "g"), ids,
		func(g *Generator) uuid.UUID { return g.ID }, scope.IsAdmin())
}

// StacksByIDs loads visible stacks by id.
func StacksByIDs(ctx context.Context, db bun.IDB, scope Scope, ids []uuid.UUID) (map[uuid.UUID]*Stack, error) {
	return byIDs(ctx, db, "StacksByIDs", "s", stackScope(scope, "s"), ids,
		func(s *Stack) uuid.UUID { return s.ID }, scope.IsAdmin())
}

// DeploymentObjectsByIDs loads visible deployment objects by id.
func DeploymentObjectsByIDs(ctx context.Context, db bun.IDB, scope Scope, ids []uuid.UUID) (map[uuid.UUID]*DeploymentObject, error) {
	return byIDs(ctx, db, "DeploymentObjectsByIDs", "d", deploymentObjectScope(scope, "d"), ids,
		func(d *DeploymentObject) uuid.UUID { return d.ID }, scope.IsAdmin())
}

// AgentsByIDs loads visible agents by id.
func AgentsByIDs(ctx context.Context, db bun.IDB, scope Scope, ids []uuid.UUID) (map[uuid.UUID]*Agent, error) {
	return byIDs(ctx, db, "AgentsByIDs", "a", agentScope(scope, "a"), ids,
		func(a *Agent) uuid.UUID { return a.ID }, scope.IsAdmin())
}

// StacksByGenerators pages each generator's visible stacks; every id in
// genIDs has a page in the result (possibly empty).
func StacksByGenerators(ctx context.Context, db bun.IDB, scope Scope, genIDs []uuid.UUID, filter *StackFilter, args ListArgs) (map[uuid.UUID]*Page[Stack], error) {
	q, err := stackListQuery(db, scope, filter, args)
	if err != nil {
		return nil, op("StacksByGenerators", "stack", err)
	}
	spec := stackPage
	spec.partition = "s.generator_id"
	pages, err := runPage[Stack, stackRow](ctx, db, q.Where("s.generator_id IN (?)", bun.List(genIDs)), spec, args, genIDs)
	return pages, op("StacksByGenerators", "stack", err)
}

// DeploymentObjectsByStacks pages each stack's visible objects (sequence DESC).
func DeploymentObjectsByStacks(ctx context.Context, db bun.IDB, scope Scope, stackIDs []uuid.UUID, filter *DeploymentObjectFilter, args ListArgs) (map[uuid.UUID]*Page[DeploymentObject], error) {
	q, err := objectListQuery(db, scope, filter, args)
	if err != nil {
		return nil, op("DeploymentObjectsByStacks", "deployment object", err)
	}
	spec := deploymentObjectPage
	spec.partition = "d.stack_id"
	pages, err := runPage[DeploymentObject, deploymentObjectRow](ctx, db, q.Where("d.stack_id IN (?)", bun.List(stackIDs)), spec, args, stackIDs)
	return pages, op("DeploymentObjectsByStacks", "deployment object", err)
}

// EventsByDeploymentObjects pages each object's visible events (newest first).
func EventsByDeploymentObjects(ctx context.Context, db bun.IDB, scope Scope, ids []uuid.UUID, filter *AgentEventFilter, args ListArgs) (map[uuid.UUID]*Page[AgentEvent], error) {
	q, err := eventListQuery(db, scope, filter, args)
	if err != nil {
		return nil, op("EventsByDeploymentObjects", "agent event", err)
	}
	spec := agentEventPage
	spec.partition = "e.deployment_object_id"
	spec.parent = func(e *AgentEvent) uuid.UUID { return e.DeploymentObjectID }
	pages, err := runPage[AgentEvent, agentEventRow](ctx, db, q.Where("e.deployment_object_id IN (?)", bun.List(ids)), spec, args, ids)
	return pages, op("EventsByDeploymentObjects", "agent event", err)
}

// EventsByAgents pages each agent's visible events (newest first).
func EventsByAgents(ctx context.Context, db bun.IDB, scope Scope, ids []uuid.UUID, filter *AgentEventFilter, args ListArgs) (map[uuid.UUID]*Page[AgentEvent], error) {
	q, err := eventListQuery(db, scope, filter, args)
	if err != nil {
		return nil, op("EventsByAgents", "agent event", err)
	}
	spec := agentEventPage
	spec.partition = "e.agent_id"
	spec.parent = func(e *AgentEvent) uuid.UUID { return e.AgentID }
	pages, err := runPage[AgentEvent, agentEventRow](ctx, db, q.Where("e.agent_id IN (?)", bun.List(ids)), spec, args, ids)
	return pages, op("EventsByAgents", "agent event", err)
}

// LabelsByStacks returns each visible stack's labels, sorted.
func LabelsByStacks(ctx context.Context, db bun.IDB, scope Scope, ids []uuid.UUID, budget *RowBudget) (map[uuid.UUID][]string, error) {
	var rows []*StackLabel
	vis := visibleStackIDs(scope)
	q := db.NewSelect().Model(&rows).Where("sl.stack_id IN (?)", bun.List(ids)).
		Where("sl.stack_id IN ("+vis.sql+")", vis.args...).OrderExpr("sl.stack_id, sl.label")
	if err := scanBudgeted(ctx, q, &rows, budget); err != nil {
		return nil, op("LabelsByStacks", "label", err)
	}
	out := make(map[uuid.UUID][]string, len(ids))
	for _, r := range rows {
		out[r.StackID] = append(out[r.StackID], r.Label)
	}
	return out, nil
}

// AnnotationsByStacks returns each visible stack's annotations, by key.
func AnnotationsByStacks(ctx context.Context, db bun.IDB, scope Scope, ids []uuid.UUID, budget *RowBudget) (map[uuid.UUID][]*Annotation, error) {
	var rows []*StackAnnotation
	vis := visibleStackIDs(scope)
	q := db.NewSelect().Model(&rows).Where("sa.stack_id IN (?)", bun.List(ids)).
		Where("sa.stack_id IN ("+vis.sql+")", vis.args...).OrderExpr("sa.stack_id, sa.key")
	if err := scanBudgeted(ctx, q, &rows, budget); err != nil {
		return nil, op("AnnotationsByStacks", "annotation", err)
	}
	out := make(map[uuid.UUID][]*Annotation, len(ids))
	for _, r := range rows {
		out[r.StackID] = append(out[r.StackID], &Annotation{Key: r.Key, Value: r.Value})
	}
	return out, nil
}

// LabelsByAgents returns each visible agent's labels, sorted.
func LabelsByAgents(ctx context.Context, db bun.IDB, scope Scope, ids []uuid.UUID, budget *RowBudget) (map[uuid.UUID][]string, error) {
	var rows []*AgentLabel
	vis := visibleAgentIDs(scope)
	q := db.NewSelect().Model(&rows).Where("al.agent_id IN (?)", bun.List(ids)).
		Where("al.agent_id IN ("+vis.sql+")", vis.args...).OrderExpr("al.agent_id, al.label")
	if err := scanBudgeted(ctx, q, &rows, budget); err != nil {
		return nil, op("LabelsByAgents", "label", err)
	}
	out := make(map[uuid.UUID][]string, len(ids))
	for _, r := range rows {
		out[r.AgentID] = append(out[r.AgentID], r.Label)
	}
	return out, nil
}

// AnnotationsByAgents returns each visible agent's annotations, by key.
func AnnotationsByAgents(ctx context.Context, db bun.IDB, scope Scope, ids []uuid.UUID, budget *RowBudget) (map[uuid.UUID][]*Annotation, error) {
	var rows []*AgentAnnotation
	vis := visibleAgentIDs(scope)
	q := db.NewSelect().Model(&rows).Where("aa.agent_id IN (?)", bun.List(ids)).
		Where("aa.agent_id IN ("+vis.sql+")", vis.args...).OrderExpr("aa.agent_id, aa.key")
	if err := scanBudgeted(ctx, q, &rows, budget); err != nil {
		return nil, op("AnnotationsByAgents", "annotation", err)
	}
	out := make(map[uuid.UUID][]*Annotation, len(ids))
	for _, r := range rows {
		out[r.AgentID] = append(out[r.AgentID], &Annotation{Key: r.Key, Value: r.Value})
	}
	return out, nil
}

// targetsBy loads visible targets whose column is in ids.
func targetsBy(ctx context.Context, db bun.IDB, scope Scope, name, column string, ids []uuid.UUID, key func(*AgentTarget) uuid.UUID, budget *RowBudget) (map[uuid.UUID][]*AgentTarget, error) {
	var rows []*AgentTarget
	q := db.NewSelect().Model(&rows).Where("t."+column+" IN (?)", bun.List(ids))
	if err := scanBudgeted(ctx, where(q, agentTargetScope(scope, "t")).OrderExpr("t.created_at, t.id"), &rows, budget); err != nil {
		return nil, op(name, "agent target", err)
	}
	out := make(map[uuid.UUID][]*AgentTarget, len(ids))
	for _, r := range rows {
		out[key(r)] = append(out[key(r)], r)
	}
	return out, nil
}

// TargetsByAgents returns each agent's visible targets in (created_at, id) order.
func TargetsByAgents(ctx context.Context, db bun.IDB, scope Scope, ids []uuid.UUID, budget *RowBudget) (map[uuid.UUID][]*AgentTarget, error) {
	return targetsBy(ctx, db, scope, "TargetsByAgents", "agent_id", ids, func(t *AgentTarget) uuid.UUID { return t.AgentID }, budget)
}

// TargetsByStacks returns each stack's visible targets in (created_at, id) order.
func TargetsByStacks(ctx context.Context, db bun.IDB, scope Scope, ids []uuid.UUID, budget *RowBudget) (map[uuid.UUID][]*AgentTarget, error) {
	return targetsBy(ctx, db, scope, "TargetsByStacks", "stack_id", ids, func(t *AgentTarget) uuid.UUID { return t.StackID }, budget)
}

// LatestDeploymentObjectsByStacks returns each visible stack's latest live
// object (deletion markers included); stacks with none are absent.
func LatestDeploymentObjectsByStacks(ctx context.Context, db bun.IDB, scope Scope, ids []uuid.UUID) (map[uuid.UUID]*DeploymentObject, error) {
	var rows []*DeploymentObject
	if err := latestObjectsQuery(db, &rows, scope, ids).Scan(ctx); err != nil {
		return nil, op("LatestDeploymentObjectsByStacks", "deployment object", err)
	}
	return byStack(rows), nil
}

// latestObjectsQuery selects into rows the latest live object (deletion
// markers included) of each of the stacks the scope sees among ids.
func latestObjectsQuery(db bun.IDB, rows *[]*DeploymentObject, scope Scope, ids []uuid.UUID) *bun.SelectQuery {
	q := db.NewSelect().Model(rows).ColumnExpr("d.*").DistinctOn("d.stack_id").
		Where("d.stack_id IN (?)", bun.List(ids))
	return whereAll(q, latestObjectConds(scope)).OrderExpr("d.stack_id, d.sequence_id DESC")
}

// latestObjectConds limit deployment objects over d to those a stack's
// latest is chosen from: live (deletion markers included), in the scope.
func latestObjectConds(scope Scope) []cond {
	return []cond{{sql: "d.deleted_at IS NULL"}, deploymentObjectScope(scope, "d")}
}

// byStack keys objects, at most one per stack, by their stack.
func byStack(objs []*DeploymentObject) map[uuid.UUID]*DeploymentObject {
	out := make(map[uuid.UUID]*DeploymentObject, len(objs))
	for _, o := range objs {
		out[o.StackID] = o
	}
	return out
}

// scanBudgeted runs q (a list read into rows, a pointer to a slice) with
// at most budget.Limit() rows; ErrRowBudget when the budget would pass.
func scanBudgeted[T any](ctx context.Context, q *bun.SelectQuery, rows *[]T, budget *RowBudget) error {
	if budget.Passed() {
		return ErrRowBudget
	}
	if limit := budget.Limit(); limit > 0 {
		q = q.Limit(int64(limit))
	}
	if err := q.Scan(ctx); err != nil {
		return err
	}
	return budget.Check(len(*rows))
}
