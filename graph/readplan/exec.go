package readplan

import (
	"context"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"

	"github.com/brokkr/brokkr/models"
)

// An execution reads a plan level by level: the statements of one level
// (every relation at that depth, for all its parents at once) go to
// PostgreSQL in one round trip; then each relation's values are keyed by
// parent, the row budget is checked and spent, and the next level reads
// for the objects this one found.

// exec is one execution of a plan.
type exec struct {
	p      *plan
	db     *bun.DB
	m      *metrics
	budget *models.RowBudget
	res    []*result // by rel.idx
	// refused is the connection where the row budget ran out ("": not).
	refused string
}

// result is what one relation read.
type result struct {
	by map[uuid.UUID]*value // by parent key (uuid.Nil: a root field)
	// objs are the distinct objects it holds (its children's parents),
	// with how often the answer holds each; at is their index by id, kept
	// where one object may be held for several parents (a parent edge).
	objs []heldObj
	at   map[uuid.UUID]int
	// keys are the distinct keys of its parents (see exec.keys).
	keys []uuid.UUID
	// read is the rows its budgeted statement read, as the executor's
	// statement counts them (look-ahead and cursor rows included).
	read int
	err  error // its statement failed
	// counts of a page's rows per parent: all, and before the cursor.
	counts map[uuid.UUID][2]int
	// behind: kindMapped's rows behind the targets, by id.
	behind map[uuid.UUID]any
}

// heldObj is an object a relation holds.
type heldObj struct {
	id   uuid.UUID
	obj  any
	mult int
}

// shared reports whether a relation may hold one object for several
// parents (a page's rows each belong to one parent).
func shared(k relKind) bool {
	switch k {
	case kindList, kindPage, kindTargets, kindLatest, kindGet, kindViewer, kindViewerEntity:
		return false
	}
	return true
}

// value is one relation's value for one parent.
type value struct {
	err  error
	obj  any
	page *page
	objs []any
	strs []string
	anns []*models.Annotation
	all  []*models.AgentTarget // targets: the whole list
	// targets: the page of the list the field asks for
	targets *models.Page[models.AgentTarget]
}

// page is a connection's page.
type page struct {
	rows    []any
	cursors []string
	hasNext bool
	end     *string
	total   int
}

func newExec(p *plan, db *bun.DB, budget int, m *metrics) *exec {
	x := &exec{p: p, db: db, m: m, budget: models.NewRowBudget(budget), res: make([]*result, len(p.rels))}
	for i := range x.res {
		x.res[i] = &result{by: map[uuid.UUID]*value{}}
	}
	return x
}

// run reads every level on c. It returns a statement's error, for the
// caller's retry; the relations of the level that failed keep it for the
// answer (see fail).
func (x *exec) run(ctx context.Context, c *pgx.Conn) error {
	for lv, phases := range x.p.levels {
		var stmts []*stmt
		for _, ph := range phases {
			s, err := x.statements(ph)
			if err != nil {
				return x.fail(lv, err)
			}
			stmts = append(stmts, s...)
		}
		if err := send(ctx, c, stmts, x.m); err != nil {
			return x.fail(lv, err)
		}
		for _, ph := range phases {
			x.finish(ph)
			if !x.spend(ph) {
				return nil
			}
		}
	}
	x.poison()
	return nil
}

// fail gives the relations of level lv the error of its statements: the
// levels below are not read (each relation there hangs from one of lv).
func (x *exec) fail(lv int, err error) error {
	for _, ph := range x.p.levels[lv] {
		x.res[ph.r.idx].err = err
	}
	return err
}

// finish gives every parent of a phase its value once its statements
// have been read: what the executor answers for a parent it found nothing
// for (an empty list, null, NotFound), pages completed.
func (x *exec) finish(ph *phase) {
	r, res := ph.r, x.res[ph.r.idx]
	if r.err != nil || res.err != nil {
		return
	}
	keys := []uuid.UUID{uuid.Nil}
	if r.parent != nil && r.spec.kind != kindViewerEntity {
		keys = x.keys(r)
	}
	switch r.spec.kind {
	case kindList, kindPage:
		x.finishPages(r, keys)
	case kindTargets, kindMapped:
		if ph.n == 0 {
			x.finishTargets(r, keys)
		} else {
			x.finishMapped(r)
		}
	case kindDesired:
		x.finishDesired(r, keys)
	default:
		for _, k := range keys {
			if res.by[k] == nil {
				res.by[k] = x.missing(r)
			}
		}
	}
}

// missing is the value of a parent a relation found nothing for.
func (x *exec) missing(r *rel) *value {
	switch r.spec.kind {
	case kindGet, kindEntity:
		return &value{err: models.NotFound(r.spec.what)}
	case kindViewerEntity:
		if (r.spec.target == generatorType && x.p.scope.Role == models.RoleGenerator) ||
			(r.spec.target == agentType && x.p.scope.Role == models.RoleAgent) {
			return &value{err: models.NotFound(r.spec.what)}
		}
	}
	return &value{}
}

// spend checks the rows a budgeted statement read (at most the rows left:
// the executor's statement asks for the rows left plus one) and spends the
// rows the answer holds; false when the budget ran out (x.refused).
func (x *exec) spend(ph *phase) bool {
	r, res := ph.r, x.res[ph.r.idx]
	if r.err != nil || res.err != nil {
		return true
	}
	if budgeted(ph) && x.budget.Check(res.read) != nil {
		x.refused = r.conn
		return false
	}
	n := 0
	last := ph.n == r.spec.kind.phases()-1 && r.children > 0
	if last && shared(r.spec.kind) {
		res.at = map[uuid.UUID]int{}
	}
	x.eachParent(r, func(parent any, m int) {
		v := x.valueOf(r, parent)
		if v == nil || v.err != nil {
			return
		}
		n += m * cost(ph, v)
		if last {
			for _, o := range held(v) {
				res.hold(objID(r, o), o, m)
			}
		}
	})
	if x.budget.Spend(n) != nil {
		x.refused = r.conn
		return false
	}
	return true
}

// hold records that the answer holds o mult more times.
func (res *result) hold(id uuid.UUID, o any, mult int) {
	if res.at == nil {
		res.objs = append(res.objs, heldObj{id: id, obj: o, mult: mult})
		return
	}
	if i, ok := res.at[id]; ok {
		res.objs[i].mult += mult
		return
	}
	res.at[id] = len(res.objs)
	res.objs = append(res.objs, heldObj{id: id, obj: o, mult: mult})
}

// budgeted reports whether a phase's statement is limited by the row
// budget (lists read by id are bounded by their keys instead).
func budgeted(ph *phase) bool {
	switch ph.r.spec.kind {
	case kindList, kindPage, kindLabels, kindAnnotations, kindTargets, kindDesired:
		return true
	case kindMapped:
		return ph.n == 0
	}
	return false
}

// cost is the rows a value holds, each time the answer holds it.
func cost(ph *phase, v *value) int {
	switch ph.r.spec.kind {
	case kindList, kindPage:
		return len(v.page.rows)
	case kindGet, kindEntity, kindLatest:
		if v.obj != nil {
			return 1
		}
	case kindLabels:
		return len(v.strs)
	case kindAnnotations:
		return len(v.anns)
	case kindDesired:
		return len(v.objs)
	case kindTargets:
		return len(v.all)
	case kindMapped:
		if ph.n == 0 {
			return len(v.all)
		}
		if v.page != nil {
			return len(v.page.rows)
		}
	}
	return 0
}

// held is the objects a value holds.
func held(v *value) []any {
	switch {
	case v.page != nil:
		return v.page.rows
	case v.objs != nil:
		return v.objs
	case v.obj != nil:
		return []any{v.obj}
	}
	return nil
}

// objID is the id of an object r holds (the viewer has none).
func objID(r *rel, o any) uuid.UUID {
	if r.spec.target == nil {
		return uuid.Nil
	}
	return r.spec.target.id(o)
}

// eachParent calls fn with each distinct parent object of r and how often
// the answer holds it (a root field: once, with no object).
func (x *exec) eachParent(r *rel, fn func(parent any, mult int)) {
	if r.parent == nil {
		fn(nil, 1)
		return
	}
	for _, h := range x.res[r.parent.idx].objs {
		fn(h.obj, h.mult)
	}
}

// key is the key of r's value for a parent object.
func (x *exec) key(r *rel, parent any) uuid.UUID {
	switch r.spec.kind {
	case kindEntity:
		return r.spec.fk(parent)
	case kindViewer, kindViewerEntity, kindGet, kindList:
		return uuid.Nil
	}
	return r.parent.spec.target.id(parent)
}

// valueOf is r's value for a parent object (nil: none was read).
func (x *exec) valueOf(r *rel, parent any) *value {
	return x.res[r.idx].by[x.key(r, parent)]
}

// keys are the distinct keys of r's parents (read once they are known).
func (x *exec) keys(r *rel) []uuid.UUID {
	res := x.res[r.idx]
	if res.keys == nil {
		res.keys = x.parentKeys(r)
	}
	return res.keys
}

func (x *exec) parentKeys(r *rel) []uuid.UUID {
	objs := x.res[r.parent.idx].objs
	out := make([]uuid.UUID, 0, len(objs))
	if r.spec.kind != kindEntity {
		for _, h := range objs { // r is keyed by its parents' ids
			out = append(out, h.id)
		}
		return out
	}
	seen := make(map[uuid.UUID]struct{}, len(objs))
	for _, h := range objs {
		k := r.spec.fk(h.obj)
		if _, dup := seen[k]; !dup {
			seen[k] = struct{}{}
			out = append(out, k)
		}
	}
	return out
}
