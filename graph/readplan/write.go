package readplan

import (
	"context"

	"github.com/99designs/gqlgen/graphql"

	"github.com/brokkr/brokkr/models"
)

// The answer is written in one pass over the plan and the values read, in
// document order. Errors are reported as the executor reports them: each
// through the error presenter with the field context the executor would
// have (its path and location), and a null where a value failed, spreading
// up to the nearest nullable field (GraphQL's null propagation): a write
// returns false when its value is null but may not be, and the nearest
// nullable field above truncates what was written of it and writes null.
//
// The executor resolves sibling fields concurrently, so when one answer
// holds several errors its order of them varies from run to run; here they
// come in document order, which is one of the executor's orders.

type writer struct {
	jsonw
	x    *exec
	ctx  context.Context // carries a response context for the errors
	path []step
}

// step is one step of the response path: a field of an object type, or an
// index in a list.
type step struct {
	f     *field
	obj   string
	index int
}

// viewerObject is the Viewer's object (it has no row).
type viewerObject struct{}

func (w *writer) push(f *field, obj string) { w.path = append(w.path, step{f: f, obj: obj}) }
func (w *writer) pushIndex(i int)           { w.path = append(w.path, step{index: i}) }
func (w *writer) pop()                      { w.path = w.path[:len(w.path)-1] }

// fail reports err on the current field, as the executor reports a
// resolver's error, and writes null; false: the value is missing.
func (w *writer) fail(err error) bool {
	ctx := graphql.WithFieldContext(w.ctx, &graphql.FieldContext{Object: queryName})
	for _, s := range w.path {
		if s.f == nil {
			i := s.index
			ctx = graphql.WithFieldContext(ctx, &graphql.FieldContext{Index: &i})
			continue
		}
		ctx = graphql.WithFieldContext(ctx, &graphql.FieldContext{Object: s.obj, Field: s.f.cf, IsMethod: true, IsResolver: true})
	}
	graphql.AddError(ctx, graphql.AddFieldLocationToError(ctx, err))
	w.null()
	return false
}

// answer writes the data of the root selection.
func (w *writer) answer(root *selection) []byte {
	if !w.object(root, nil) {
		return []byte("null")
	}
	return w.b
}

// object writes an object's selection; false when a non-null field of it
// is null.
func (w *writer) object(s *selection, obj any) bool {
	ok := true
	w.b = append(w.b, '{')
	for i, f := range s.fields {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.key(f.cf.Alias)
		switch f.kind {
		case fTypename:
			w.str(s.typeName)
		case fScalar:
			f.col.write(&w.jsonw, obj)
		case fRole:
			w.str(string(w.x.p.scope.Role))
		case fKey:
			w.str(obj.(*models.Annotation).Key)
		case fValue:
			w.str(obj.(*models.Annotation).Value)
		case fRel:
			ok = w.relField(f, obj, s.typeName) && ok
		}
	}
	w.b = append(w.b, '}')
	return ok
}

// relField writes a relation field's value, null in its place when the
// field is nullable and its value failed.
func (w *writer) relField(f *field, obj any, typeName string) bool {
	w.push(f, typeName)
	defer w.pop()
	mark := len(w.b)
	if w.relValue(f, obj) {
		return true
	}
	if f.nonNull {
		return false
	}
	w.b = w.b[:mark]
	w.null()
	return true
}

func (w *writer) relValue(f *field, obj any) bool {
	r, res := f.rel, w.x.res[f.rel.idx]
	if r.err != nil {
		return w.fail(r.err)
	}
	if res.err != nil {
		return w.fail(models.Translate(res.err, r.spec.what))
	}
	v := w.x.valueOf(r, obj)
	if v == nil {
		v = w.x.missing(r)
	}
	if v.err != nil {
		return w.fail(v.err)
	}
	switch r.spec.kind {
	case kindViewer:
		if err := w.viewerError(f.sel); err != nil {
			return w.fail(err)
		}
		return w.object(f.sel, v.obj)
	case kindList, kindPage, kindTargets, kindMapped:
		return w.connection(f.sel, v.page)
	case kindLabels:
		w.strings(v.strs)
		return true
	case kindAnnotations:
		anns := make([]any, len(v.anns))
		for i, a := range v.anns {
			anns[i] = a
		}
		return w.list(f.sel, anns)
	case kindDesired:
		return w.list(f.sel, v.objs)
	}
	if v.obj == nil {
		w.null()
		return !f.nonNull
	}
	return w.object(f.sel, v.obj)
}

// viewerError is the error of the viewer field: the executor reads the
// caller's generator or agent in the viewer's resolver, and reports its
// absence there.
func (w *writer) viewerError(s *selection) error {
	for _, f := range s.fields {
		if f.kind != fRel {
			continue
		}
		if v := w.x.valueOf(f.rel, viewerObject{}); v != nil && v.err != nil {
			return v.err
		}
	}
	return nil
}

func (w *writer) strings(ss []string) {
	w.b = append(w.b, '[')
	for i, s := range ss {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.str(s)
	}
	w.b = append(w.b, ']')
}

// list writes a list of non-null objects; false when one is null.
func (w *writer) list(s *selection, objs []any) bool {
	ok := true
	w.b = append(w.b, '[')
	for i, o := range objs {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.pushIndex(i)
		ok = w.object(s, o) && ok
		w.pop()
	}
	w.b = append(w.b, ']')
	return ok
}

// connection writes a connection over a page.
func (w *writer) connection(s *selection, pg *page) bool {
	ok := true
	w.b = append(w.b, '{')
	for i, f := range s.fields {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.key(f.cf.Alias)
		switch f.kind {
		case fTypename:
			w.str(s.typeName)
		case fNodes:
			w.push(f, s.typeName)
			ok = w.list(f.sel, pg.rows) && ok
			w.pop()
		case fEdges:
			w.push(f, s.typeName)
			ok = w.edges(f.sel, pg) && ok
			w.pop()
		case fPageInfo:
			w.pageInfo(f.sel, pg)
		case fTotal:
			w.int(pg.total)
		}
	}
	w.b = append(w.b, '}')
	return ok
}

func (w *writer) edges(s *selection, pg *page) bool {
	ok := true
	w.b = append(w.b, '[')
	for i, o := range pg.rows {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.pushIndex(i)
		w.b = append(w.b, '{')
		for j, f := range s.fields {
			if j > 0 {
				w.b = append(w.b, ',')
			}
			w.key(f.cf.Alias)
			switch f.kind {
			case fTypename:
				w.str(s.typeName)
			case fCursor:
				w.str(pg.cursors[i])
			case fNode:
				w.push(f, s.typeName)
				ok = w.object(f.sel, o) && ok
				w.pop()
			}
		}
		w.b = append(w.b, '}')
		w.pop()
	}
	w.b = append(w.b, ']')
	return ok
}

func (w *writer) pageInfo(s *selection, pg *page) {
	w.b = append(w.b, '{')
	for i, f := range s.fields {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.key(f.cf.Alias)
		switch f.kind {
		case fTypename:
			w.str(s.typeName)
		case fHasNext:
			w.boolean(pg.hasNext)
		case fEndCursor:
			w.optStr(pg.end)
		}
	}
	w.b = append(w.b, '}')
}
