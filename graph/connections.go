package graph

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/brokkr/brokkr/models"
)

// listArgs gathers a list field's arguments for models.
func listArgs(first *int, after *string, includeDeleted *bool) models.ListArgs {
	return models.ListArgs{First: first, After: after, IncludeDeleted: flag(includeDeleted)}
}

func pageInfo[T any](p *models.Page[T]) *models.PageInfo {
	return &models.PageInfo{HasNextPage: p.HasNextPage, EndCursor: p.EndCursor}
}

// edges pairs a page's nodes with their cursors through mk.
func edges[T, E any](p *models.Page[T], mk func(cursor string, n *T) E) []E {
	out := make([]E, len(p.Nodes))
	for i, n := range p.Nodes {
		out[i] = mk(p.Cursors[i], n)
	}
	return out
}

func nodes[T any](p *models.Page[T]) []*T {
	if p.Nodes == nil {
		return []*T{}
	}
	return p.Nodes
}

func generatorConnection(p *models.Page[models.Generator]) *models.GeneratorConnection {
	return &models.GeneratorConnection{Nodes: nodes(p), PageInfo: pageInfo(p), TotalCount: p.TotalCount,
		Edges: edges(p, func(c string, n *models.Generator) *models.GeneratorEdge {
			return &models.GeneratorEdge{Cursor: c, Node: n}
		})}
}

func stackConnection(p *models.Page[models.Stack]) *models.StackConnection {
	return &models.StackConnection{Nodes: nodes(p), PageInfo: pageInfo(p), TotalCount: p.TotalCount,
		Edges: edges(p, func(c string, n *models.Stack) *models.StackEdge { return &models.StackEdge{Cursor: c, Node: n} })}
}

func deploymentObjectConnection(p *models.Page[models.DeploymentObject]) *models.DeploymentObjectConnection {
	return &models.DeploymentObjectConnection{Nodes: nodes(p), PageInfo: pageInfo(p), TotalCount: p.TotalCount,
		Edges: edges(p, func(c string, n *models.DeploymentObject) *models.DeploymentObjectEdge {
			return &models.DeploymentObjectEdge{Cursor: c, Node: n}
		})}
}

func agentConnection(p *models.Page[models.Agent]) *models.AgentConnection {
	return &models.AgentConnection{Nodes: nodes(p), PageInfo: pageInfo(p), TotalCount: p.TotalCount,
		Edges: edges(p, func(c string, n *models.Agent) *models.AgentEdge { return &models.AgentEdge{Cursor: c, Node: n} })}
}

func agentEventConnection(p *models.Page[models.AgentEvent]) *models.AgentEventConnection {
	return &models.AgentEventConnection{Nodes: nodes(p), PageInfo: pageInfo(p), TotalCount: p.TotalCount,
		Edges: edges(p, func(c string, n *models.AgentEvent) *models.AgentEventEdge {
			return &models.AgentEventEdge{Cursor: c, Node: n}
		})}
}

func agentTargetConnection(p *models.Page[models.AgentTarget]) *models.AgentTargetConnection {
	return &models.AgentTargetConnection{Nodes: nodes(p), PageInfo: pageInfo(p), TotalCount: p.TotalCount,
		Edges: edges(p, func(c string, n *models.AgentTarget) *models.AgentTargetEdge {
			return &models.AgentTargetEdge{Cursor: c, Node: n}
		})}
}

// sliceCursorPrefix marks cursors of lists that models returns whole
// (targets, and the agents/stacks behind them) and that are paged here.
const sliceCursorPrefix = "t:"

// SliceCursor is the cursor of the list entry keyed by id (the read
// planner writes the same).
func SliceCursor(id uuid.UUID) string {
	return base64.RawURLEncoding.EncodeToString([]byte(sliceCursorPrefix + id.String()))
}

// SlicePage pages a whole, stably ordered list by the ids keyed by key:
// the same first/after rules and opaque cursors as the lists models pages
// (exported for the read planner, which pages the same lists).
func SlicePage[T any](all []*T, key func(*T) uuid.UUID, first *int, after *string) (*models.Page[T], error) {
	n := models.DefaultFirst
	if first != nil {
		n = *first
	}
	if n < 1 || n > models.MaxFirst {
		return nil, models.Invalid("first", "first must be between 1 and %d", models.MaxFirst)
	}
	start := 0
	if after != nil {
		raw, err := base64.RawURLEncoding.DecodeString(*after)
		id, perr := uuid.Parse(strings.TrimPrefix(string(raw), sliceCursorPrefix))
		if err != nil || perr != nil || !strings.HasPrefix(string(raw), sliceCursorPrefix) {
			return nil, models.Invalid("after", "malformed cursor")
		}
		start = -1
		for i, v := range all {
			if key(v) == id {
				start = i + 1
				break
			}
		}
		if start < 0 {
			return nil, models.Invalid("after", "unknown cursor")
		}
	}
	end := min(start+n, len(all))
	p := &models.Page[T]{Nodes: all[start:end], TotalCount: len(all), HasNextPage: end < len(all)}
	for _, v := range p.Nodes {
		p.Cursors = append(p.Cursors, SliceCursor(key(v)))
	}
	if len(p.Cursors) > 0 {
		c := p.Cursors[len(p.Cursors)-1]
		p.EndCursor = &c
	}
	return p, nil
}

// mapPage turns a page of T into a page of U with the same cursors, loading
// each U through load; nodes the caller may not see (NotFound) are left out.
func mapPage[T, U any](p *models.Page[T], load func(*T) (*U, error)) (*models.Page[U], error) {
	out := &models.Page[U]{HasNextPage: p.HasNextPage, EndCursor: p.EndCursor, TotalCount: p.TotalCount}
	for i, n := range p.Nodes {
		u, err := load(n)
		if models.ErrorKind(err) == models.KindNotFound {
			out.TotalCount--
			continue
		}
		if err != nil {
			return nil, err
		}
		out.Nodes = append(out.Nodes, u)
		out.Cursors = append(out.Cursors, p.Cursors[i])
	}
	return out, nil
}

func targetID(t *models.AgentTarget) uuid.UUID { return t.ID }

// listTop runs a top-level list query in the caller's scope, within the
// response's row budget, and returns its page as a connection, its rows
// registered as one cohort for their edges.
func listTop[T, F, C any](r *Resolver, ctx context.Context,
	list func(context.Context, bun.IDB, models.Scope, F, models.ListArgs) (*models.Page[T], error),
	filter F, args models.ListArgs, connection func(*models.Page[T]) C) (C, error) {
	var zero C
	scope, err := scopeOf(ctx)
	if err != nil {
		return zero, err
	}
	l := r.loaders(ctx)
	args.Budget = l.budget
	p, err := list(ctx, r.DB, scope, filter, args)
	if err == nil {
		err = l.budget.Spend(len(p.Nodes))
	}
	if errors.Is(err, models.ErrRowBudget) {
		return zero, l.refuse(ctx)
	}
	if err != nil {
		return zero, err
	}
	return connection(listed(r, ctx, p)), nil
}

// getOne reads one object by id in the caller's scope; it spends one row
// of the response's budget.
func getOne[T any](r *Resolver, ctx context.Context,
	get func(context.Context, bun.IDB, models.Scope, uuid.UUID, bool) (*T, error),
	id uuid.UUID, includeDeleted *bool) (*T, error) {
	scope, err := scopeOf(ctx)
	if err != nil {
		return nil, err
	}
	v, err := get(ctx, r.DB, scope, id, flag(includeDeleted))
	if err != nil {
		return nil, err
	}
	if l := r.loaders(ctx); l.budget.Spend(1) != nil {
		return nil, l.refuse(ctx)
	}
	return v, nil
}
