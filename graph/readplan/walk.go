package readplan

import (
	"context"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/brokkr/brokkr/auth"
	"github.com/brokkr/brokkr/models"
)

// The walk turns a query operation into a plan: its selection sets as the
// executor collects them (graphql.CollectFields: fragments, aliases,
// @skip/@include, variables), and a tree of relations, each read by one
// statement per level of the tree. Anything it does not know (a field, a
// directive, @defer, introspection) stops it: the operation goes to the
// executor.

// plan is one planned operation.
type plan struct {
	scope  models.Scope
	root   *selection
	rels   []*rel     // in document order
	levels [][]*phase // the statements of each level, in document order
}

// phase is one statement of a relation at one level (a relation behind
// targets reads at two levels).
type phase struct {
	r *rel
	n int
}

// selection is a planned selection set on one object type.
type selection struct {
	typeName string
	fields   []*field
	// serial: the executor resolves its fields one after the other (they
	// have no resolvers: a connection's, an edge's, the viewer's), not
	// concurrently as an object's relation fields.
	serial bool
}

type fieldKind uint8

const (
	fTypename  fieldKind = iota
	fScalar              // a column of the object
	fRel                 // a relation
	fNodes               // connection.nodes
	fEdges               // connection.edges
	fPageInfo            // connection.pageInfo
	fTotal               // connection.totalCount
	fCursor              // edge.cursor
	fNode                // edge.node
	fHasNext             // pageInfo.hasNextPage
	fEndCursor           // pageInfo.endCursor
	fRole                // viewer.role
	fKey                 // annotation.key
	fValue               // annotation.value
)

// field is one field of a selection.
type field struct {
	cf      graphql.CollectedField
	kind    fieldKind
	nonNull bool
	col     *column
	rel     *rel
	sel     *selection
}

// walker builds a plan; failed says why it gave up.
type walker struct {
	ctx    context.Context
	oc     *graphql.OperationContext
	p      *plan
	failed string
	// names and paged are the response path being walked, and whether
	// each of its fields takes `first` (for the row budget's connection).
	names []string
	paged []bool
}

func (w *walker) fail(reason string) {
	if w.failed == "" {
		w.failed = reason
	}
}

// walk plans the operation of oc for scope; reason is set when it cannot.
func walk(ctx context.Context, oc *graphql.OperationContext, scope models.Scope) (p *plan, reason string) {
	op := oc.Operation
	if op == nil || op.Operation != ast.Query {
		return nil, "operation"
	}
	w := &walker{ctx: ctx, oc: oc, p: &plan{scope: scope}}
	w.p.root = w.rootSel(op.SelectionSet)
	if w.failed != "" {
		return nil, w.failed
	}
	for _, r := range w.p.rels {
		for n := range r.spec.kind.phases() {
			for len(w.p.levels) <= r.level+n {
				w.p.levels = append(w.p.levels, nil)
			}
			w.p.levels[r.level+n] = append(w.p.levels[r.level+n], &phase{r: r, n: n})
		}
	}
	return w.p, ""
}

// collect collects a selection set's fields as the executor does.
func (w *walker) collect(ss ast.SelectionSet, typeName string) []graphql.CollectedField {
	fs := graphql.CollectFields(w.oc, ss, []string{typeName})
	for _, f := range fs {
		if f.IsDeferred() {
			w.fail("defer")
		}
		if f.Definition == nil && f.Name != "__typename" {
			w.fail("field")
		}
	}
	return fs
}

func (w *walker) newField(cf graphql.CollectedField, kind fieldKind) *field {
	f := &field{cf: cf, kind: kind}
	if cf.Definition != nil {
		f.nonNull = cf.Definition.Type.NonNull
	}
	return f
}

// enter and leave track the response path of the field being walked.
func (w *walker) enter(cf graphql.CollectedField) {
	w.names = append(w.names, cf.Alias)
	w.paged = append(w.paged, cf.Definition != nil && cf.Definition.Arguments.ForName("first") != nil)
}

func (w *walker) leave() {
	w.names, w.paged = w.names[:len(w.names)-1], w.paged[:len(w.paged)-1]
}

// connection is the path of the connection the current field reads in,
// as the executor names it for the row budget (graph.connectionPath): the
// field itself if it takes `first`, else the nearest field above that does,
// else the field.
func (w *walker) connection() string {
	end := len(w.names)
	for i := len(w.paged) - 1; i >= 0; i-- {
		if w.paged[i] {
			end = i + 1
			break
		}
	}
	return strings.Join(w.names[:end], ".")
}

func (w *walker) rootSel(ss ast.SelectionSet) *selection {
	s := &selection{typeName: queryName}
	for _, cf := range w.collect(ss, queryName) {
		switch spec := rootRels[cf.Name]; {
		case cf.Name == "__typename":
			s.fields = append(s.fields, w.newField(cf, fTypename))
		case spec != nil:
			s.fields = append(s.fields, w.relField(cf, spec, nil, s))
		default:
			w.fail("field") // introspection, or a field the planner does not know
		}
	}
	return s
}

// objectSel plans a selection on a table's object type; owner is the
// relation that reads its objects.
func (w *walker) objectSel(t *objType, ss ast.SelectionSet, owner *rel) *selection {
	s := &selection{typeName: t.name}
	for _, cf := range w.collect(ss, t.name) {
		if cf.Name == "__typename" {
			s.fields = append(s.fields, w.newField(cf, fTypename))
		} else if c := t.fields[cf.Name]; c != nil {
			f := w.newField(cf, fScalar)
			f.col = c
			owner.cols |= c.bit
			s.fields = append(s.fields, f)
		} else if spec := t.rels[cf.Name]; spec != nil {
			if spec.kind == kindEntity {
				owner.cols |= t.col(spec.parentCol).bit
			}
			s.fields = append(s.fields, w.relField(cf, spec, owner, s))
		} else {
			w.fail("field")
		}
	}
	return s
}

// relField plans a relation field of the selection in, under owner (nil: a
// root field).
func (w *walker) relField(cf graphql.CollectedField, spec *relSpec, owner *rel, in *selection) *field {
	w.enter(cf)
	defer w.leave()
	if !knownDirectives(cf.Definition) {
		w.fail("directive")
		return w.newField(cf, fRel)
	}
	r := &rel{spec: spec, parent: owner, owner: in, idx: len(w.p.rels), conn: w.connection(), cols: idCol(spec.target)}
	if owner != nil {
		r.level = owner.level + owner.spec.kind.phases()
		owner.children++
	}
	w.p.rels = append(w.p.rels, r)
	f := w.newField(cf, fRel)
	f.rel = r
	r.field = f
	a, err := coerceArgs(cf.ArgumentMap(w.oc.Variables), spec.list)
	if err != nil {
		w.fail("argument")
		return f
	}
	r.args = a
	r.err = w.prepare(cf, r)
	f.sel = w.relSel(cf, r)
	return f
}

// relSel plans the selection of what a relation field holds.
func (w *walker) relSel(cf graphql.CollectedField, r *rel) *selection {
	switch r.spec.kind {
	case kindViewer:
		return w.viewerSel(cf, r)
	case kindList, kindPage, kindTargets, kindMapped:
		return w.connectionSel(cf, r)
	case kindLabels:
		return nil
	case kindAnnotations:
		return w.leafSel(cf, annotationName, map[string]fieldKind{"key": fKey, "value": fValue})
	}
	return w.objectSel(r.spec.target, cf.Selections, r)
}

// connectionSel plans a connection (nodes, edges, pageInfo, totalCount).
func (w *walker) connectionSel(cf graphql.CollectedField, r *rel) *selection {
	s := &selection{typeName: cf.Definition.Type.Name(), serial: true}
	for _, c := range w.collect(cf.Selections, s.typeName) {
		s.fields = append(s.fields, w.connectionField(c, r))
	}
	return s
}

// connectionField plans one field of a connection over r's objects.
func (w *walker) connectionField(c graphql.CollectedField, r *rel) *field {
	var f *field
	w.enter(c)
	defer w.leave()
	switch c.Name {
	case "__typename":
		f = w.newField(c, fTypename)
	case "nodes":
		f = w.newField(c, fNodes)
		f.sel = w.objectSel(r.spec.target, c.Selections, r)
	case "edges":
		f = w.newField(c, fEdges)
		f.sel = w.edgeSel(c, r)
	case "pageInfo":
		f = w.newField(c, fPageInfo)
		f.sel = w.leafSel(c, pageInfoName, map[string]fieldKind{"hasNextPage": fHasNext, "endCursor": fEndCursor})
		r.cursors = r.cursors || hasKind(f.sel, fEndCursor)
	case "totalCount":
		f = w.newField(c, fTotal)
		r.total = true
	default:
		w.fail("field")
		f = w.newField(c, fTypename)
	}
	return f
}

func (w *walker) edgeSel(cf graphql.CollectedField, r *rel) *selection {
	s := &selection{typeName: cf.Definition.Type.Name(), serial: true}
	for _, c := range w.collect(cf.Selections, s.typeName) {
		var f *field
		switch c.Name {
		case "__typename":
			f = w.newField(c, fTypename)
		case "cursor":
			f = w.newField(c, fCursor)
			r.cursors = true
		case "node":
			w.enter(c)
			f = w.newField(c, fNode)
			f.sel = w.objectSel(r.spec.target, c.Selections, r)
			w.leave()
		default:
			w.fail("field")
			f = w.newField(c, fTypename)
		}
		s.fields = append(s.fields, f)
	}
	return s
}

// leafSel plans a selection on a type of plain fields (kinds by name).
func (w *walker) leafSel(cf graphql.CollectedField, typeName string, kinds map[string]fieldKind) *selection {
	s := &selection{typeName: typeName}
	for _, c := range w.collect(cf.Selections, typeName) {
		k, ok := kinds[c.Name]
		if c.Name == "__typename" {
			k, ok = fTypename, true
		}
		if !ok {
			w.fail("field")
		}
		s.fields = append(s.fields, w.newField(c, k))
	}
	return s
}

func (w *walker) viewerSel(cf graphql.CollectedField, r *rel) *selection {
	s := &selection{typeName: viewerName, serial: true}
	for _, c := range w.collect(cf.Selections, viewerName) {
		switch spec := viewerRels[c.Name]; {
		case c.Name == "__typename":
			s.fields = append(s.fields, w.newField(c, fTypename))
		case c.Name == "role":
			s.fields = append(s.fields, w.newField(c, fRole))
		case spec != nil:
			s.fields = append(s.fields, w.relField(c, spec, r, s))
		default:
			w.fail("field")
		}
	}
	return s
}

func hasKind(s *selection, k fieldKind) bool {
	for _, f := range s.fields {
		if f.kind == k {
			return true
		}
	}
	return false
}

// knownDirectives reports whether a field's definition has no directive
// but @hasRole, which the planner applies as the executor does.
func knownDirectives(def *ast.FieldDefinition) bool {
	for _, d := range def.Directives {
		if d.Name != "hasRole" {
			return false
		}
	}
	return true
}

// roleCheck applies a field's @hasRole with the directive's own function.
func roleCheck(ctx context.Context, def *ast.FieldDefinition) error {
	d := def.Directives.ForName("hasRole")
	if d == nil {
		return nil
	}
	var roles []models.Role
	if a := d.Arguments.ForName("roles"); a != nil {
		for _, c := range a.Value.Children {
			roles = append(roles, models.Role(c.Value.Raw))
		}
	}
	_, err := auth.HasRole(ctx, nil, func(context.Context) (any, error) { return nil, nil }, roles)
	return err
}
