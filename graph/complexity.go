package graph

import (
	"context"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/brokkr/brokkr/models"
)

// pageSize is the number of rows a list field may return.
func pageSize(first *int) int {
	if first == nil {
		return models.DefaultFirst
	}
	return min(max(*first, 1), models.MaxFirst)
}

// Complexity weighs list fields by their page size, so the complexity limit
// bounds the rows a query can ask for (gqlgen's default counts each field
// once, whatever the list length).
func Complexity() ComplexityRoot {
	var c ComplexityRoot
	page := func(child int, first *int) int { return 1 + child*pageSize(first) }

	c.Query.Generators = func(ch int, first *int, _ *string, _ *models.GeneratorFilter, _ *bool) int { return page(ch, first) }
	c.Query.Stacks = func(ch int, first *int, _ *string, _ *models.StackFilter, _ *bool) int { return page(ch, first) }
	c.Query.DeploymentObjects = func(ch int, first *int, _ *string, _ *models.DeploymentObjectFilter, _ *bool) int {
		return page(ch, first)
	}
	c.Query.Agents = func(ch int, first *int, _ *string, _ *models.AgentFilter, _ *bool) int { return page(ch, first) }
	c.Query.AgentEvents = func(ch int, first *int, _ *string, _ *models.AgentEventFilter, _ *bool) int { return page(ch, first) }

	c.Generator.Stacks = func(ch int, first *int, _ *string, _ *models.StackFilter, _ *bool) int { return page(ch, first) }
	c.Stack.DeploymentObjects = func(ch int, first *int, _ *string, _ *models.DeploymentObjectFilter, _ *bool) int {
		return page(ch, first)
	}
	c.Stack.Targets = func(ch int, first *int, _ *string) int { return page(ch, first) }
	c.Stack.Agents = func(ch int, first *int, _ *string) int { return page(ch, first) }
	c.DeploymentObject.Events = func(ch int, first *int, _ *string, _ *models.AgentEventFilter, _ *bool) int { return page(ch, first) }
	c.Agent.Targets = func(ch int, first *int, _ *string) int { return page(ch, first) }
	c.Agent.Stacks = func(ch int, first *int, _ *string) int { return page(ch, first) }
	c.Agent.Events = func(ch int, first *int, _ *string, _ *models.AgentEventFilter, _ *bool) int { return page(ch, first) }
	return c
}

// DepthLimit refuses operations whose selections nest deeper than Max
// fields (fragments are followed; introspection fields are not counted,
// so GraphiQL's schema query always passes).
type DepthLimit struct{ Max int }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = DepthLimit{}

func (DepthLimit) ExtensionName() string                   { return "BrokkrDepthLimit" }
func (DepthLimit) Validate(graphql.ExecutableSchema) error { return nil }

func (d DepthLimit) MutateOperationContext(_ context.Context, op *graphql.OperationContext) *gqlerror.Error {
	if d.Max <= 0 || op.Operation == nil {
		return nil
	}
	if depth := selectionDepth(op.Operation.SelectionSet, map[string]bool{}); depth > d.Max {
		err := gqlerror.Errorf("query is nested %d levels deep, more than the limit of %d", depth, d.Max)
		err.Extensions = map[string]any{"code": errcode.ValidationFailed, "maxDepth": d.Max}
		return err
	}
	return nil
}

// selectionDepth is the number of nested fields of the deepest path; seen
// guards against fragment cycles (which validation rejects anyway).
func selectionDepth(set ast.SelectionSet, seen map[string]bool) int {
	deepest := 0
	for _, sel := range set {
		var d int
		switch s := sel.(type) {
		case *ast.Field:
			if len(s.Name) > 1 && s.Name[:2] == "__" {
				continue
			}
			d = 1 + selectionDepth(s.SelectionSet, seen)
		case *ast.InlineFragment:
			d = selectionDepth(s.SelectionSet, seen)
		case *ast.FragmentSpread:
			if s.Definition == nil || seen[s.Name] {
				continue
			}
			seen[s.Name] = true
			d = selectionDepth(s.Definition.SelectionSet, seen)
			delete(seen, s.Name)
		default:
			panic(fmt.Sprintf("unexpected selection %T", sel))
		}
		deepest = max(deepest, d)
	}
	return deepest
}
