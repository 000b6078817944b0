package readplan

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun/schema"

	"github.com/brokkr/brokkr/graph"
	"github.com/brokkr/brokkr/models"
)

// Pages. A nested page is read per parent by a LATERAL subquery that stops
// at first+1 rows of that parent (the extra row says there is a next
// page), reading only the asked columns; its totalCount, when asked, by a
// second statement counting per parent, sent in the same round trip. The
// executor pages with window functions over every row of every parent
// (models.runPage); the answers are the same.

// pageStatements reads the pages of r for the parents ids (nil: r is a
// root list, one page).
func (x *exec) pageStatements(r *rel, ids []uuid.UUID) ([]*stmt, error) {
	t := r.spec.target
	a := t.table.Alias()
	s, err := x.stmt(r, "page", ids, func(b *builder) schema.QueryAppender {
		inner := b.where(b.sel(tableNames[t.table], a).ColumnExpr(columns(t, r.cols, a)), r.conds...)
		if ids == nil {
			return b.limited(b.where(inner, r.after).OrderExpr(orders[t].OrderBy(a)), slotFirst)
		}
		inner = b.where(inner.Where(a+"."+r.spec.parentCol+" = parent.id"), r.after).OrderExpr(orders[t].OrderBy(a))
		outer := b.db.NewSelect().ColumnExpr("parent.id").ColumnExpr("x.*").
			TableExpr("unnest(?::uuid[]) AS parent(id)", b.p(slotKeys)).
			Join("JOIN LATERAL (? LIMIT ?) AS x ON TRUE", inner, b.p(r.first+1))
		return b.limited(outer, slotLimit)
	}, x.pageRows(r, ids != nil))
	if err != nil || !(r.total || r.args.after != nil) {
		return one(s, err)
	}
	c, err := x.countStatement(r, ids)
	if err != nil {
		return nil, err
	}
	return []*stmt{s, c}, nil
}

// pageRows reads a page statement's rows (leading with their parent's id
// when nested) into the parents' pages: the first `first`, then the
// look-ahead row, which says there is a next page and is not decoded.
func (x *exec) pageRows(r *rel, nested bool) func(pgx.Rows) error {
	res := x.res[r.idx]
	return func(rows pgx.Rows) error {
		var parent uuid.UUID
		var sc *scanner
		if nested {
			sc = newScanner(r.spec.target, r.cols, (*[16]byte)(&parent))
		} else {
			sc = newScanner(r.spec.target, r.cols)
		}
		for rows.Next() {
			res.read++
			if nested {
				raw := rows.RawValues()[0] // a uuid, in binary: its 16 bytes
				if len(raw) != len(parent) {
					return fmt.Errorf("readplan: a parent id of %d bytes", len(raw))
				}
				copy(parent[:], raw)
			}
			v := res.by[parent]
			if v == nil {
				v = &value{page: &page{rows: make([]any, 0, min(r.first, 16))}}
				res.by[parent] = v
			}
			if len(v.page.rows) == r.first {
				v.page.hasNext = true
				continue
			}
			o, err := sc.next(rows)
			if err != nil {
				return err
			}
			v.page.rows = append(v.page.rows, o)
		}
		return nil
	}
}

// countStatement counts each parent's rows, and those not after the
// cursor: the executor's statement reads one more row for a parent that
// has some (it carries the count), which the row budget counts.
func (x *exec) countStatement(r *rel, ids []uuid.UUID) (*stmt, error) {
	t := r.spec.target
	a := t.table.Alias()
	res := x.res[r.idx]
	res.counts = map[uuid.UUID][2]int{}
	return x.stmt(r, "count", ids, func(b *builder) schema.QueryAppender {
		q := b.sel(tableNames[t.table], a)
		if ids != nil {
			q = q.ColumnExpr(a+"."+r.spec.parentCol).Where(a+"."+r.spec.parentCol+" = ANY(?::uuid[])", b.p(slotKeys)).
				GroupExpr(a + "." + r.spec.parentCol)
		}
		q = q.ColumnExpr("count(*)")
		if r.args.after != nil {
			q = q.ColumnExpr("count(*) FILTER (WHERE NOT ("+r.after.SQL+"))", b.params(r.after.Args)...)
		} else {
			q = q.ColumnExpr("0")
		}
		return b.where(q, r.conds...)
	}, func(rows pgx.Rows) error {
		var parent uuid.UUID
		var n [2]int
		dests := []any{&n[0], &n[1]}
		if ids != nil {
			dests = append([]any{(*[16]byte)(&parent)}, dests...)
		}
		for rows.Next() {
			if err := rows.Scan(dests...); err != nil {
				return err
			}
			res.counts[parent] = n
		}
		return nil
	})
}

// finishPages gives every parent its page: its count, its cursors, and
// the rows the executor's statement would have read.
func (x *exec) finishPages(r *rel, keys []uuid.UUID) {
	res := x.res[r.idx]
	order := orders[r.spec.target]
	for _, k := range keys {
		v := res.by[k]
		if v == nil {
			v = &value{page: &page{}}
			res.by[k] = v
		}
		n := res.counts[k]
		v.page.total = n[0]
		if r.args.after != nil && n[1] > 0 {
			res.read++
		}
		if !r.cursors {
			continue
		}
		pg := v.page
		pg.cursors = make([]string, len(pg.rows))
		for i, o := range pg.rows {
			pg.cursors[i] = order.Cursor(r.spec.target.key(o))
		}
		if len(pg.cursors) > 0 {
			pg.end = &pg.cursors[len(pg.cursors)-1]
		}
	}
}

// targetStatement reads the parents' whole target lists (the executor
// reads them whole and pages them itself: graph.SlicePage).
func (x *exec) targetStatement(r *rel, ids []uuid.UUID) ([]*stmt, error) {
	all := colset(0)
	for _, c := range targetType.cols {
		all |= c.bit
	}
	res := x.res[r.idx]
	return one(x.stmt(r, "targets", ids, func(b *builder) schema.QueryAppender {
		q := b.sel("agent_targets", "t").ColumnExpr(columns(targetType, all, "t")).
			Where("t."+r.spec.parentCol+" = ANY(?::uuid[])", b.p(slotKeys))
		return b.limited(b.where(q, r.conds...).OrderExpr("t.created_at, t.id"), slotLimit)
	}, func(rows pgx.Rows) error {
		sc := newScanner(targetType, all)
		for rows.Next() {
			o, err := sc.next(rows)
			if err != nil {
				return err
			}
			res.read++
			t := o.(*models.AgentTarget)
			parent := t.StackID
			if r.spec.parentCol == "agent_id" {
				parent = t.AgentID
			}
			v := res.by[parent]
			if v == nil {
				v = &value{}
				res.by[parent] = v
			}
			v.all = append(v.all, t)
		}
		return nil
	}))
}

func targetID(t *models.AgentTarget) uuid.UUID { return t.ID }

// finishTargets pages each parent's targets as the executor does.
func (x *exec) finishTargets(r *rel, keys []uuid.UUID) {
	res := x.res[r.idx]
	for _, k := range keys {
		v := res.by[k]
		if v == nil {
			v = &value{}
			res.by[k] = v
		}
		v.targets, v.err = graph.SlicePage(v.all, targetID, r.args.first, r.args.after)
		if v.err != nil || r.spec.kind != kindTargets {
			continue
		}
		p := v.targets
		v.page = &page{rows: make([]any, len(p.Nodes)), cursors: p.Cursors, hasNext: p.HasNextPage, end: p.EndCursor, total: p.TotalCount}
		for i, t := range p.Nodes {
			v.page.rows[i] = t
		}
	}
}

// via is the id of the row behind a target.
func via(r *rel, t *models.AgentTarget) uuid.UUID {
	if r.spec.via == "agent_id" {
		return t.AgentID
	}
	return t.StackID
}

// behindKeys are the rows behind the targets of the pages.
func (x *exec) behindKeys(r *rel) []uuid.UUID {
	seen := map[uuid.UUID]struct{}{}
	var out []uuid.UUID
	for _, v := range x.res[r.idx].by {
		if v.targets != nil {
			for _, t := range v.targets.Nodes {
				if id := via(r, t); !has(seen, id) {
					seen[id] = struct{}{}
					out = append(out, id)
				}
			}
		}
	}
	return out
}

func has(set map[uuid.UUID]struct{}, id uuid.UUID) bool {
	_, ok := set[id]
	return ok
}

func (x *exec) behindRows(r *rel) func(pgx.Rows) error {
	res := x.res[r.idx]
	res.behind = map[uuid.UUID]any{}
	return func(rows pgx.Rows) error {
		sc := newScanner(r.spec.target, r.cols)
		for rows.Next() {
			o, err := sc.next(rows)
			if err != nil {
				return err
			}
			res.behind[r.spec.target.id(o)] = o
		}
		return nil
	}
}

// finishMapped turns each page of targets into the page of the rows
// behind them as the executor does (graph.mapPage): a row the scope does
// not see is left out and not counted, its target's cursor kept as the
// end cursor.
func (x *exec) finishMapped(r *rel) {
	res := x.res[r.idx]
	for _, v := range res.by {
		p := v.targets
		if p == nil {
			continue
		}
		pg := &page{hasNext: p.HasNextPage, end: p.EndCursor, total: p.TotalCount}
		for i, t := range p.Nodes {
			o := res.behind[via(r, t)]
			if o == nil {
				pg.total--
				continue
			}
			pg.rows = append(pg.rows, o)
			pg.cursors = append(pg.cursors, p.Cursors[i])
		}
		v.page = pg
	}
}

// finishDesired orders each agent's desired state by sequence.
func (x *exec) finishDesired(r *rel, keys []uuid.UUID) {
	res := x.res[r.idx]
	for _, k := range keys {
		v := res.by[k]
		if v == nil {
			res.by[k] = &value{}
			continue
		}
		slices.SortFunc(v.objs, func(a, b any) int {
			return cmp.Compare(a.(*models.DeploymentObject).SequenceID, b.(*models.DeploymentObject).SequenceID)
		})
	}
}
