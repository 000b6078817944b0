package graph

import (
	"context"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/models"
)

// One function per nested edge of the schema, each through its loader (see
// loaders.go); the resolvers call these.

func generatorID(g *models.Generator) uuid.UUID          { return g.ID }
func stackID(s *models.Stack) uuid.UUID                  { return s.ID }
func objectID(d *models.DeploymentObject) uuid.UUID      { return d.ID }
func agentID(a *models.Agent) uuid.UUID                  { return a.ID }
func stackGeneratorID(s *models.Stack) uuid.UUID         { return s.GeneratorID }
func objectStackID(d *models.DeploymentObject) uuid.UUID { return d.StackID }
func eventAgentID(e *models.AgentEvent) uuid.UUID        { return e.AgentID }
func eventObjectID(e *models.AgentEvent) uuid.UUID       { return e.DeploymentObjectID }
func targetAgentID(t *models.AgentTarget) uuid.UUID      { return t.AgentID }
func targetStackID(t *models.AgentTarget) uuid.UUID      { return t.StackID }

func orEmpty[T any](v []T, err error) ([]T, error) {
	if v == nil {
		v = []T{}
	}
	return v, err
}

func (l *Loaders) generatorStacks(ctx context.Context, g *models.Generator, filter *models.StackFilter, args models.ListArgs) (*models.StackConnection, error) {
	p, err := loadPage(ctx, l, l.StacksByGenerator, g, generatorID, filter, args)
	if err != nil {
		return nil, err
	}
	return stackConnection(p), nil
}

func (l *Loaders) stackGenerator(ctx context.Context, s *models.Stack) (*models.Generator, error) {
	return loadOne(ctx, l, l.Generator, s, stackGeneratorID, "generator")
}

func (l *Loaders) stackLabels(ctx context.Context, s *models.Stack) ([]string, error) {
	return orEmpty(loadOptional(ctx, l, l.StackLabels, s, stackID))
}

func (l *Loaders) stackAnnotations(ctx context.Context, s *models.Stack) ([]*models.Annotation, error) {
	return orEmpty(loadOptional(ctx, l, l.StackAnnotations, s, stackID))
}

func (l *Loaders) stackDeploymentObjects(ctx context.Context, s *models.Stack, filter *models.DeploymentObjectFilter, args models.ListArgs) (*models.DeploymentObjectConnection, error) {
	p, err := loadPage(ctx, l, l.DeploymentObjectsByStack, s, stackID, filter, args)
	if err != nil {
		return nil, err
	}
	return deploymentObjectConnection(p), nil
}

func (l *Loaders) stackLatest(ctx context.Context, s *models.Stack) (*models.DeploymentObject, error) {
	// deleteStack's answer carries the marker it published, which a
	// generator's scope would not read (its deleted stack's objects).
	if s.DeletionMarker != nil {
		return s.DeletionMarker, nil
	}
	return loadOptional(ctx, l, l.LatestByStack, s, stackID)
}

func (l *Loaders) stackTargets(ctx context.Context, s *models.Stack) ([]*models.AgentTarget, error) {
	return orEmpty(loadOptional(ctx, l, l.TargetsByStack, s, stackID))
}

// objectStack is an object's stack. Objects delivered by the feed carry
// it, read once per batch (a deletion marker's stack is deleted and would
// answer NOT_FOUND through the loader): it is returned before the
// response's loaders are asked for, since building them is most of what a
// delivered object's stack { id } would cost.
func (r *Resolver) objectStack(ctx context.Context, d *models.DeploymentObject) (*models.Stack, error) {
	if d.Stack != nil {
		return d.Stack, nil
	}
	l := r.loaders(ctx)
	return loadOne(ctx, l, l.Stack, d, objectStackID, "stack")
}

func (l *Loaders) objectEvents(ctx context.Context, d *models.DeploymentObject, filter *models.AgentEventFilter, args models.ListArgs) (*models.AgentEventConnection, error) {
	p, err := loadPage(ctx, l, l.EventsByDeploymentObject, d, objectID, filter, args)
	if err != nil {
		return nil, err
	}
	return agentEventConnection(p), nil
}

func (l *Loaders) agentLabels(ctx context.Context, a *models.Agent) ([]string, error) {
	return orEmpty(loadOptional(ctx, l, l.AgentLabels, a, agentID))
}

func (l *Loaders) agentAnnotations(ctx context.Context, a *models.Agent) ([]*models.Annotation, error) {
	return orEmpty(loadOptional(ctx, l, l.AgentAnnotations, a, agentID))
}

func (l *Loaders) agentTargets(ctx context.Context, a *models.Agent) ([]*models.AgentTarget, error) {
	return orEmpty(loadOptional(ctx, l, l.TargetsByAgent, a, agentID))
}

func (l *Loaders) agentDesiredState(ctx context.Context, a *models.Agent) ([]*models.DeploymentObject, error) {
	return orEmpty(loadOptional(ctx, l, l.DesiredState, a, agentID))
}

func (l *Loaders) agentEvents(ctx context.Context, a *models.Agent, filter *models.AgentEventFilter, args models.ListArgs) (*models.AgentEventConnection, error) {
	p, err := loadPage(ctx, l, l.EventsByAgent, a, agentID, filter, args)
	if err != nil {
		return nil, err
	}
	return agentEventConnection(p), nil
}

func (l *Loaders) eventAgent(ctx context.Context, e *models.AgentEvent) (*models.Agent, error) {
	return loadOne(ctx, l, l.Agent, e, eventAgentID, "agent")
}

func (l *Loaders) eventObject(ctx context.Context, e *models.AgentEvent) (*models.DeploymentObject, error) {
	return loadOne(ctx, l, l.DeploymentObject, e, eventObjectID, "deployment object")
}

func (l *Loaders) targetAgent(ctx context.Context, t *models.AgentTarget) (*models.Agent, error) {
	return loadOne(ctx, l, l.Agent, t, targetAgentID, "agent")
}

func (l *Loaders) targetStack(ctx context.Context, t *models.AgentTarget) (*models.Stack, error) {
	return loadOne(ctx, l, l.Stack, t, targetStackID, "stack")
}

// targetConnection pages a whole target list.
func targetConnection(all []*models.AgentTarget, err error, first *int, after *string) (*models.AgentTargetConnection, error) {
	if err != nil {
		return nil, err
	}
	p, err := SlicePage(all, targetID, first, after)
	if err != nil {
		return nil, err
	}
	return agentTargetConnection(p), nil
}

// targetedStacks pages the stacks behind a target list.
func (l *Loaders) targetedStacks(ctx context.Context, all []*models.AgentTarget, err error, first *int, after *string) (*models.StackConnection, error) {
	p, err := behindTargets(l, all, err, first, after, func(t *models.AgentTarget) (*models.Stack, error) { return l.targetStack(ctx, t) })
	if err != nil {
		return nil, err
	}
	return stackConnection(p), nil
}

// targetingAgents pages the agents behind a target list.
func (l *Loaders) targetingAgents(ctx context.Context, all []*models.AgentTarget, err error, first *int, after *string) (*models.AgentConnection, error) {
	p, err := behindTargets(l, all, err, first, after, func(t *models.AgentTarget) (*models.Agent, error) { return l.targetAgent(ctx, t) })
	if err != nil {
		return nil, err
	}
	return agentConnection(p), nil
}

// behindTargets pages a target list (err: loading it failed) and loads the
// row behind each target of the page; the page's targets form a cohort, so
// their rows load in one batch.
func behindTargets[T any](l *Loaders, all []*models.AgentTarget, err error, first *int, after *string, load func(*models.AgentTarget) (*T, error)) (*models.Page[T], error) {
	if err != nil {
		return nil, err
	}
	p, err := SlicePage(all, targetID, first, after)
	if err != nil {
		return nil, err
	}
	register(l, p.Nodes)
	return mapPage(p, load)
}
