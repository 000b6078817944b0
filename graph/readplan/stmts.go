package readplan

import (
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun/schema"

	"github.com/brokkr/brokkr/models"
)

// The statements of each kind of relation, and how their rows become
// values. Each reads only the columns the query asks for (and the keys the
// plan needs), for all the relation's parents at once.

// statements builds a phase's statements (none when it has nothing to read).
func (x *exec) statements(ph *phase) ([]*stmt, error) {
	r := ph.r
	if r.err != nil || x.res[r.idx].err != nil {
		return nil, nil
	}
	if r.parent == nil {
		return x.rootStatements(r)
	}
	ids := x.keys(r)
	if ph.n == 1 {
		ids = x.behindKeys(r)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	switch r.spec.kind {
	case kindPage:
		return x.pageStatements(r, ids)
	case kindEntity:
		return x.entityStatement(r, "entity", ids, r.conds, x.byID(r))
	case kindViewerEntity:
		return x.viewerStatement(r)
	case kindLabels, kindAnnotations:
		return x.leafStatement(r, ids)
	case kindLatest:
		return x.latestStatement(r, ids)
	case kindTargets, kindMapped:
		if ph.n == 1 {
			return x.entityStatement(r, "behind", ids, r.behind, x.behindRows(r))
		}
		return x.targetStatement(r, ids)
	case kindDesired:
		return x.desiredStatement(r, ids)
	}
	return nil, nil
}

// limit is the LIMIT of a budgeted statement: the rows left plus one (nil:
// no budget).
func (x *exec) limit() any {
	if n := x.budget.Limit(); n > 0 {
		return n
	}
	return nil
}

func one(s *stmt, err error) ([]*stmt, error) {
	if err != nil {
		return nil, err
	}
	return []*stmt{s}, nil
}

// rootStatements reads a root field: an object by id, a list's page; the
// viewer needs no statement (its object is the caller's scope).
func (x *exec) rootStatements(r *rel) ([]*stmt, error) {
	switch r.spec.kind {
	case kindGet:
		t := r.spec.target
		a := t.table.Alias()
		return one(x.stmt(r, "get", nil, func(b *builder) schema.QueryAppender {
			q := b.sel(tableNames[t.table], a).ColumnExpr(columns(t, r.cols, a)).Where(a+".id = ?", b.p(r.args.id))
			return b.where(q, r.conds...)
		}, x.byID(r)))
	case kindList:
		return x.pageStatements(r, nil)
	case kindViewer:
		x.res[r.idx].by[uuid.Nil] = &value{obj: viewerObject{}}
	}
	return nil, nil
}

// byID reads objects of r's target keyed by their id.
func (x *exec) byID(r *rel) func(pgx.Rows) error {
	res := x.res[r.idx]
	return func(rows pgx.Rows) error {
		sc := newScanner(r.spec.target, r.cols)
		for rows.Next() {
			o, err := sc.next(rows)
			if err != nil {
				return err
			}
			id := r.spec.target.id(o)
			if r.parent == nil {
				id = uuid.Nil
			}
			res.by[id] = &value{obj: o}
		}
		return nil
	}
}

// entityStatement reads rows of t by id (parent edges, the rows behind
// targets), under conds.
func (x *exec) entityStatement(r *rel, name string, ids []uuid.UUID, conds []models.Cond, read func(pgx.Rows) error) ([]*stmt, error) {
	t := r.spec.target
	a := t.table.Alias()
	return one(x.stmt(r, name, ids, func(b *builder) schema.QueryAppender {
		q := b.sel(tableNames[t.table], a).ColumnExpr(columns(t, r.cols, a)).Where(a+".id = ANY(?::uuid[])", b.p(slotKeys))
		return b.where(q, conds...)
	}, read))
}

// viewerStatement reads the caller's own generator or agent.
func (x *exec) viewerStatement(r *rel) ([]*stmt, error) {
	id := x.p.scope.GeneratorID
	role := models.RoleGenerator
	if r.spec.target == agentType {
		id, role = x.p.scope.AgentID, models.RoleAgent
	}
	if x.p.scope.Role != role {
		return nil, nil
	}
	t := r.spec.target
	a := t.table.Alias()
	res := x.res[r.idx]
	return one(x.stmt(r, "viewer", nil, func(b *builder) schema.QueryAppender {
		q := b.sel(tableNames[t.table], a).ColumnExpr(columns(t, r.cols, a)).Where(a+".id = ?", b.p(id))
		return b.where(q, r.conds...)
	}, func(rows pgx.Rows) error {
		sc := newScanner(t, r.cols)
		for rows.Next() {
			o, err := sc.next(rows)
			if err != nil {
				return err
			}
			res.by[uuid.Nil] = &value{obj: o}
		}
		return nil
	}))
}

// leafStatement reads labels or annotations of the parents.
func (x *exec) leafStatement(r *rel, ids []uuid.UUID) ([]*stmt, error) {
	s := r.spec
	pc := s.alias + "." + s.parentCol
	cols, order := pc+", "+s.alias+".label", pc+", "+s.alias+".label"
	if s.kind == kindAnnotations {
		cols, order = pc+", "+s.alias+".key, "+s.alias+".value", pc+", "+s.alias+".key"
	}
	vis := r.conds[0]
	res := x.res[r.idx]
	return one(x.stmt(r, "leaf", ids, func(b *builder) schema.QueryAppender {
		q := b.sel(s.table, s.alias).ColumnExpr(cols).Where(pc+" = ANY(?::uuid[])", b.p(slotKeys)).
			Where(pc+" IN ("+vis.SQL+")", b.params(vis.Args)...).OrderExpr(order)
		return b.limited(q, slotLimit)
	}, func(rows pgx.Rows) error {
		var parent uuid.UUID
		var k, v string
		dests := []any{(*[16]byte)(&parent), &k}
		if s.kind == kindAnnotations {
			dests = append(dests, &v)
		}
		for rows.Next() {
			if err := rows.Scan(dests...); err != nil {
				return err
			}
			res.read++
			val := res.by[parent]
			if val == nil {
				val = &value{}
				res.by[parent] = val
			}
			if s.kind == kindAnnotations {
				val.anns = append(val.anns, &models.Annotation{Key: k, Value: v})
			} else {
				val.strs = append(val.strs, k)
			}
		}
		return nil
	}))
}

// latestStatement reads each stack's newest live object.
func (x *exec) latestStatement(r *rel, ids []uuid.UUID) ([]*stmt, error) {
	t := r.spec.target
	return one(x.stmt(r, "latest", ids, func(b *builder) schema.QueryAppender {
		inner := b.where(b.sel(tableNames[t.table], "d").ColumnExpr(columns(t, r.cols, "d")).
			Where("d.stack_id = parent.id"), r.conds...).OrderExpr("d.sequence_id DESC").Limit(1)
		return b.db.NewSelect().ColumnExpr("parent.id").ColumnExpr("x.*").
			TableExpr("unnest(?::uuid[]) AS parent(id)", b.p(slotKeys)).Join("JOIN LATERAL (?) AS x ON TRUE", inner)
	}, x.grouped(r, t, func(parent uuid.UUID, o any) {
		x.res[r.idx].by[parent] = &value{obj: o}
	})))
}

// grouped reads rows of t that lead with their parent's id.
func (x *exec) grouped(r *rel, t *objType, add func(parent uuid.UUID, o any)) func(pgx.Rows) error {
	return func(rows pgx.Rows) error {
		var parent uuid.UUID
		sc := newScanner(t, r.cols, (*[16]byte)(&parent))
		for rows.Next() {
			o, err := sc.next(rows)
			if err != nil {
				return err
			}
			add(parent, o)
		}
		return nil
	}
}

// desiredStatement reads the agents' desired states.
func (x *exec) desiredStatement(r *rel, ids []uuid.UUID) ([]*stmt, error) {
	t := r.spec.target
	res := x.res[r.idx]
	return one(x.stmt(r, "desired", ids, func(b *builder) schema.QueryAppender {
		q := b.db.NewSelect().DistinctOn("t.agent_id, d.stack_id").ColumnExpr("t.agent_id").
			ColumnExpr(columns(t, r.cols, "d")).TableExpr(models.DesiredStateFrom).
			Where("t.agent_id = ANY(?::uuid[])", b.p(slotKeys))
		q = b.where(q, r.conds...).OrderExpr("t.agent_id, d.stack_id, d.sequence_id DESC")
		return b.limited(q, slotLimit)
	}, x.grouped(r, t, func(parent uuid.UUID, o any) {
		res.read++
		v := res.by[parent]
		if v == nil {
			v = &value{}
			res.by[parent] = v
		}
		v.objs = append(v.objs, o)
	})))
}
