package graph

import (
	"context"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/brokkr/brokkr/models"
)

// The row budget at the GraphQL edge (models.RowBudget holds the rule):
// the loaders' statements ask for at most the rows left plus one, every
// value a loader or a top-level list delivers spends its rows, and the
// first read that would pass the budget becomes an error that names the
// connection where it ran out and says to pass `first` there, as GitHub's
// API words its node limit.

// refuse is the error of a field whose read passed the row budget; the
// first one is kept for the whole answer of a query (LoaderExtension).
// Each field gets its own copy, since gqlgen sets the copy's path.
func (l *Loaders) refuse(ctx context.Context) error {
	conn := connectionPath(graphql.GetFieldContext(ctx))
	first := BudgetError(l.budget.Max(), conn)
	l.refusal.CompareAndSwap(nil, first)
	return BudgetError(l.budget.Max(), conn)
}

// BudgetError is the refusal of a query whose reads passed the row budget
// at the connection conn (a response path without list indices); the read
// planner answers the same.
func BudgetError(budget int, conn string) *gqlerror.Error {
	err := gqlerror.Errorf("By the time this query reaches the %s connection, it reads more than %d rows, "+
		"the row budget of one request: pass a smaller `first` to that connection, or to one above it.", conn, budget)
	err.Extensions = map[string]any{"code": string(models.KindRowBudget), "rowBudget": budget, "connection": conn}
	return err
}

// connectionPath is the response path, without list indices, of the
// connection a field is in: the field itself when it takes `first`, else
// the nearest field above it that does (a stack's labels run out in its
// stacks connection), else the field.
func connectionPath(fc *graphql.FieldContext) string {
	for c := fc; c != nil; c = c.Parent {
		if c.Field.Field != nil && c.Field.Definition != nil && c.Field.Definition.Arguments.ForName("first") != nil {
			fc = c
			break
		}
	}
	if fc == nil {
		return "query"
	}
	var names []string
	for _, p := range fc.Path() {
		if name, ok := p.(ast.PathName); ok {
			names = append(names, string(name))
		}
	}
	return strings.Join(names, ".")
}
