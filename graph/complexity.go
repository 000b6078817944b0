package graph

import (
	"math"
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
)

// cost is what an operation would cost if every fragment spread were
// written out in place: the depth of its deepest path of fields, and its
// number of fields (the static ceiling, Limits.MaxComplexity).
type cost struct {
	depth  int
	fields int // saturates at maxCount
}

// maxCount bounds the field counts, which double with every level of
// `fragment Fi { ...F(i-1) ...F(i-1) }`, so that sums cannot overflow.
const maxCount = math.MaxInt32

// costWalk computes costs with each fragment's cost computed once and
// reused wherever it is spread (memo), so that a document costs time
// linear in its size to weigh whatever its expansion would: `{viewer
// {...F40}}` with `fragment Fi on Viewer {...F(i-1) ...F(i-1)}` expands to
// 2^40 fields and is weighed in 41 steps. It runs before validation, so it
// tolerates what validation would refuse: a spread of an unknown fragment
// costs nothing, and so does a spread inside its own fragment (active).
type costWalk struct {
	fragments map[string]*ast.FragmentDefinition
	memo      map[string]cost
	active    map[string]bool
}

func newCostWalk(doc *ast.QueryDocument) *costWalk {
	w := &costWalk{
		fragments: make(map[string]*ast.FragmentDefinition, len(doc.Fragments)),
		memo:      make(map[string]cost, len(doc.Fragments)),
		active:    map[string]bool{},
	}
	for _, f := range doc.Fragments {
		if _, dup := w.fragments[f.Name]; !dup {
			w.fragments[f.Name] = f
		}
	}
	return w
}

// set is the cost of a selection set. Introspection fields (`__schema`,
// `__type`, `__typename`) count as fields but not as depth, so that
// GraphiQL's schema query, nested deep through `ofType`, passes the depth
// limit.
func (w *costWalk) set(ss ast.SelectionSet) cost {
	var c cost
	for _, sel := range ss {
		var s cost
		switch sel := sel.(type) {
		case *ast.Field:
			s = w.set(sel.SelectionSet)
			s.fields = min(s.fields+1, maxCount)
			if strings.HasPrefix(sel.Name, "__") {
				s.depth = 0
			} else {
				s.depth++
			}
		case *ast.InlineFragment:
			s = w.set(sel.SelectionSet)
		case *ast.FragmentSpread:
			s = w.spread(sel.Name)
		}
		c.depth = max(c.depth, s.depth)
		c.fields = min(c.fields+s.fields, maxCount)
	}
	return c
}

func (w *costWalk) spread(name string) cost {
	if c, ok := w.memo[name]; ok {
		return c
	}
	f := w.fragments[name]
	if f == nil || w.active[name] {
		return cost{}
	}
	w.active[name] = true
	c := w.set(f.SelectionSet)
	delete(w.active, name)
	w.memo[name] = c
	return c
}
