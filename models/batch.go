package models

import (
	"context"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// Batch queries behind the GraphQL layer's dataloaders: each runs ONE SQL
// statement whatever the number of keys, applies the scope, and returns
// results keyed by id (keys with nothing visible are absent from the map).
//
// The ...ByIDs functions serve parent edges (stack.generator, object.stack,
// event.agent, ...): admins get soft-deleted rows too (so an admin browsing
// deleted rows still sees their parents); other roles live rows only.

// GeneratorsByIDs loads visible generators by id.
func GeneratorsByIDs(ctx context.Context, db bun.IDB, scope Scope, ids []uuid.UUID) (map[uuid.UUID]*Generator, error) {
	return nil, errNotYet
}

// StacksByIDs loads visible stacks by id.
func StacksByIDs(ctx context.Context, db bun.IDB, scope Scope, ids []uuid.UUID) (map[uuid.UUID]*Stack, error) {
	return nil, errNotYet
}

// DeploymentObjectsByIDs loads visible deployment objects by id.
func DeploymentObjectsByIDs(ctx context.Context, db bun.IDB, scope Scope, ids []uuid.UUID) (map[uuid.UUID]*DeploymentObject, error) {
	return nil, errNotYet
}

// AgentsByIDs loads visible agents by id.
func AgentsByIDs(ctx context.Context, db bun.IDB, scope Scope, ids []uuid.UUID) (map[uuid.UUID]*Agent, error) {
	return nil, errNotYet
}

// StacksByGenerators pages each generator's visible stacks; every id in
// genIDs has a page in the result (possibly empty).
func StacksByGenerators(ctx context.Context, db bun.IDB, scope Scope, genIDs []uuid.UUID, filter *StackFilter, args ListArgs) (map[uuid.UUID]*Page[Stack], error) {
	return nil, errNotYet
}

// DeploymentObjectsByStacks pages each stack's visible objects (sequence DESC).
func DeploymentObjectsByStacks(ctx context.Context, db bun.IDB, scope Scope, stackIDs []uuid.UUID, filter *DeploymentObjectFilter, args ListArgs) (map[uuid.UUID]*Page[DeploymentObject], error) {
	return nil, errNotYet
}

// EventsByDeploymentObjects pages each object's visible events (newest first).
func EventsByDeploymentObjects(ctx context.Context, db bun.IDB, scope Scope, ids []uuid.UUID, filter *AgentEventFilter, args ListArgs) (map[uuid.UUID]*Page[AgentEvent], error) {
	return nil, errNotYet
}

// EventsByAgents pages each agent's visible events (newest first).
func EventsByAgents(ctx context.Context, db bun.IDB, scope Scope, ids []uuid.UUID, filter *AgentEventFilter, args ListArgs) (map[uuid.UUID]*Page[AgentEvent], error) {
	return nil, errNotYet
}

// LabelsByStacks returns each visible stack's labels, sorted.
func LabelsByStacks(ctx context.Context, db bun.IDB, scope Scope, ids []uuid.UUID) (map[uuid.UUID][]string, error) {
	return nil, errNotYet
}

// AnnotationsByStacks returns each visible stack's annotations, by key.
func AnnotationsByStacks(ctx context.Context, db bun.IDB, scope Scope, ids []uuid.UUID) (map[uuid.UUID][]*Annotation, error) {
	return nil, errNotYet
}

// LabelsByAgents returns each visible agent's labels, sorted.
func LabelsByAgents(ctx context.Context, db bun.IDB, scope Scope, ids []uuid.UUID) (map[uuid.UUID][]string, error) {
	return nil, errNotYet
}

// AnnotationsByAgents returns each visible agent's annotations, by key.
func AnnotationsByAgents(ctx context.Context, db bun.IDB, scope Scope, ids []uuid.UUID) (map[uuid.UUID][]*Annotation, error) {
	return nil, errNotYet
}

// TargetsByAgents returns each agent's visible targets in (created_at, id) order.
func TargetsByAgents(ctx context.Context, db bun.IDB, scope Scope, ids []uuid.UUID) (map[uuid.UUID][]*AgentTarget, error) {
	return nil, errNotYet
}

// TargetsByStacks returns each stack's visible targets in (created_at, id) order.
func TargetsByStacks(ctx context.Context, db bun.IDB, scope Scope, ids []uuid.UUID) (map[uuid.UUID][]*AgentTarget, error) {
	return nil, errNotYet
}

// LatestDeploymentObjectsByStacks returns each visible stack's latest live
// object (deletion markers included); stacks with none are absent.
func LatestDeploymentObjectsByStacks(ctx context.Context, db bun.IDB, scope Scope, ids []uuid.UUID) (map[uuid.UUID]*DeploymentObject, error) {
	return nil, errNotYet
}
