package graph

import (
	"context"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/lexer"
	"github.com/vektah/gqlparser/v2/parser"
)

// Error codes of the document limits (README "Limits").
const (
	// CodeQueryTooLarge: the document passes a cap on its size (tokens,
	// fields, aliases, fragments, repeats); extensions.limit names the cap
	// and extensions.max its value.
	CodeQueryTooLarge = "QUERY_TOO_LARGE"
	// CodeComplexity: an operation, its fragments expanded, selects more
	// fields than Limits.MaxComplexity (extensions.maxComplexity).
	CodeComplexity = "COMPLEXITY_LIMIT_EXCEEDED"
)

const (
	// MaxFragments caps the fragment definitions of a document: gqlparser's
	// validation walks each fragment with every fragment it spreads, which
	// is quadratic in their number (1,000 chained fragments: ~170 ms).
	MaxFragments = 100
	// MaxRepeats caps how often one response name (or one fragment spread)
	// may appear in a selection set, its inline fragments included:
	// gqlparser's OverlappingFieldsCanBeMerged compares every pair of them
	// (8,000 `__typename`: 4 s), and no query needs more than a few.
	MaxRepeats = 20
)

// Limits bound what a document costs before any of it runs (DESIGN §7: no
// request, with or without a key, costs more than linear time in its size
// before it is refused). As a gqlgen OperationParameterMutator they run
// before gqlgen parses and validates, because validation itself is
// super-linear on some documents: they count the document's tokens with
// gqlparser's lexer, parse it, and weigh it in one pass over the parsed
// document (costWalk, each fragment weighed once), refusing it with a
// coded error when it passes a cap; what passes, gqlgen parses and
// validates again (both linear within these caps, at most a few ms).
// A document from the query cache passed them already. Zero or negative
// caps are off.
//
// Parsing twice (on a cache miss, ~0.5 µs a token) works around gqlgen
// having no hook between its parse and its validation: rules added with
// SetValidationRulesFn join the validation's one walk and cannot stop it.
// It can go when gqlgen offers such a hook (or a parsed document can be
// handed to it).
type Limits struct {
	MaxTokens  int // lexical tokens, comments included, as gqlgen's SetParserTokenLimit counts them
	MaxFields  int // field selections written in the document, fragment spreads and inline fragments included
	MaxAliases int // aliased fields written in the document
	// MaxDepth: nested fields of any operation's deepest path, fragments
	// expanded (GRAPHQL_VALIDATION_FAILED, extensions.maxDepth).
	MaxDepth int
	// MaxComplexity: fields of any operation with its fragments expanded
	// (COMPLEXITY_LIMIT_EXCEEDED), a cheap first line before the row budget.
	MaxComplexity int
	// Cache is the server's query cache (documents that passed).
	Cache graphql.Cache[*ast.QueryDocument]
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
} = Limits{}

func (Limits) ExtensionName() string                   { return "BrokkrLimits" }
func (Limits) Validate(graphql.ExecutableSchema) error { return nil }

func (l Limits) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	if l.Cache != nil {
		if _, ok := l.Cache.Get(ctx, p.Query); ok {
			return nil
		}
	}
	if l.MaxTokens > 0 && tokensOver(p.Query, l.MaxTokens) {
		return tooLarge("tokens", l.MaxTokens, "the document has more than %d tokens", l.MaxTokens)
	}
	doc, err := parser.ParseQuery(&ast.Source{Input: p.Query})
	if err != nil {
		return nil // gqlgen parses it again and reports the error
	}
	return l.check(doc)
}

// check weighs a parsed document against the caps.
func (l Limits) check(doc *ast.QueryDocument) *gqlerror.Error {
	s := shapeOf(doc)
	switch {
	case l.MaxFields > 0 && s.fields > l.MaxFields:
		return tooLarge("fields", l.MaxFields, "the document selects %d fields (fragment spreads included), more than the limit of %d", s.fields, l.MaxFields)
	case l.MaxAliases > 0 && s.aliases > l.MaxAliases:
		return tooLarge("aliases", l.MaxAliases, "the document has %d aliases, more than the limit of %d", s.aliases, l.MaxAliases)
	case len(doc.Fragments) > MaxFragments:
		return tooLarge("fragments", MaxFragments, "the document defines %d fragments, more than the limit of %d", len(doc.Fragments), MaxFragments)
	case s.repeats > MaxRepeats:
		err := tooLarge("repeats", MaxRepeats, "a selection set selects %s %d times, more than the limit of %d", s.repeated, s.repeats, MaxRepeats)
		if s.at != nil {
			err.Locations = []gqlerror.Location{{Line: s.at.Line, Column: s.at.Column}}
		}
		return err
	}
	w := newCostWalk(doc)
	for _, op := range doc.Operations {
		c := w.set(op.SelectionSet)
		if l.MaxDepth > 0 && c.depth > l.MaxDepth {
			err := gqlerror.Errorf("query is nested %d levels deep, more than the limit of %d", c.depth, l.MaxDepth)
			err.Extensions = map[string]any{"code": errcode.ValidationFailed, "maxDepth": l.MaxDepth}
			return err
		}
		if l.MaxComplexity > 0 && c.fields > l.MaxComplexity {
			n := fmt.Sprint(c.fields)
			if c.fields == maxCount {
				n = "more than " + n
			}
			err := gqlerror.Errorf("the operation selects %s fields once its fragments are expanded, more than the limit of %d", n, l.MaxComplexity)
			err.Extensions = map[string]any{"code": CodeComplexity, "maxComplexity": l.MaxComplexity}
			return err
		}
	}
	return nil
}

func tooLarge(limit string, max int, format string, args ...any) *gqlerror.Error {
	err := gqlerror.Errorf(format, args...)
	err.Extensions = map[string]any{"code": CodeQueryTooLarge, "limit": limit, "max": max}
	return err
}

// tokensOver reports whether query has more than max tokens (comments
// count, as in gqlparser's limit), reading at most max+1 of them. A
// lexical error ends the count: the parser reports it.
func tokensOver(query string, max int) bool {
	lx := lexer.New(&ast.Source{Input: query})
	for n := 0; ; n++ {
		tok, err := lx.ReadToken()
		if err != nil || tok.Kind == lexer.EOF {
			return false
		}
		if n == max {
			return true
		}
	}
}

// shape is what a document contains as written (each fragment once).
type shape struct {
	fields, aliases int
	repeats         int    // the most selections with one response name in one selection set
	repeated        string // that response name (or `...Fragment`)
	at              *ast.Position
}

func shapeOf(doc *ast.QueryDocument) shape {
	var s shape
	for _, op := range doc.Operations {
		s.walk(op.SelectionSet)
	}
	for _, f := range doc.Fragments {
		s.walk(f.SelectionSet)
	}
	return s
}

// walk counts a selection set and the sets below it; the repeats of a set
// are counted through its inline fragments, whose fields gqlparser merges
// into it.
func (s *shape) walk(ss ast.SelectionSet) {
	if len(ss) == 0 {
		return
	}
	seen := map[string]int{}
	s.collect(ss, seen)
	for name, n := range seen {
		if n > s.repeats {
			s.repeats, s.repeated, s.at = n, "`"+name+"`", ss[0].GetPosition()
		}
	}
}

func (s *shape) collect(ss ast.SelectionSet, seen map[string]int) {
	for _, sel := range ss {
		s.fields++
		switch sel := sel.(type) {
		case *ast.Field:
			name := sel.Alias
			if name == "" {
				name = sel.Name
			}
			if sel.Alias != "" && sel.Alias != sel.Name {
				s.aliases++
			}
			seen[name]++
			s.walk(sel.SelectionSet)
		case *ast.InlineFragment:
			s.collect(sel.SelectionSet, seen)
		case *ast.FragmentSpread:
			seen["..."+sel.Name]++
		}
	}
}
