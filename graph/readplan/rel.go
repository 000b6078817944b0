package readplan

import (
	"fmt"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"

	"github.com/brokkr/brokkr/models"
)

// A relation is a field whose value the planner reads from the database:
// a root field, a page of a connection, a parent edge, a leaf list. Each
// relation of the plan is read by one statement per level (two, a page and
// its count, when a page's totalCount is asked), for all its parents at
// once.

type relKind uint8

const (
	kindViewer       relKind = iota // Query.viewer: no statement of its own
	kindViewerEntity                // Viewer.generator, Viewer.agent: the caller's own row
	kindGet                         // Query.stack(id) and the like
	kindList                        // Query.stacks and the like: one page
	kindPage                        // a nested connection: a page per parent
	kindEntity                      // a parent edge (a stack's generator): by foreign key
	kindLabels                      // labels: strings per parent
	kindAnnotations                 // annotations per parent
	kindLatest                      // Stack.latestDeploymentObject
	kindTargets                     // targets: the whole list per parent, paged here
	kindMapped                      // Stack.agents, Agent.stacks: targets, then the rows behind them
	kindDesired                     // Agent.desiredState
)

// phases is the number of levels a relation reads at.
func (k relKind) phases() int {
	if k == kindMapped {
		return 2
	}
	return 1
}

// relSpec is a relation field of the schema.
type relSpec struct {
	kind   relKind
	target *objType // the type of the objects it holds
	// parentCol: the target's column holding the parent's id (pages,
	// targets, latest), the parent's foreign key column (entities), or the
	// list table's parent column (labels, annotations).
	parentCol string
	fk        func(any) uuid.UUID // entities: the parent's foreign key
	list      *listKind           // lists and pages
	what      string              // what is not found (entities, gets)
	// labels and annotations
	table, alias string
	visible      func(models.Scope) models.Cond
	via          string // mapped: the target column naming the row behind it
}

func pageOf(t *objType, parentCol string, l *listKind) *relSpec {
	return &relSpec{kind: kindPage, target: t, parentCol: parentCol, list: l}
}

func listOf(t *objType, l *listKind) *relSpec { return &relSpec{kind: kindList, target: t, list: l} }

func getOf(t *objType, what string) *relSpec { return &relSpec{kind: kindGet, target: t, what: what} }

func entityOf(t *objType, col string, key func(any) uuid.UUID, what string) *relSpec {
	return &relSpec{kind: kindEntity, target: t, parentCol: col, fk: key, what: what}
}

// rel is one relation field of a plan.
type rel struct {
	spec   *relSpec
	field  *field
	parent *rel       // the relation whose objects it hangs from; nil: a root field
	owner  *selection // the selection its field is in
	// children counts the relations under it (when none, the objects it
	// holds are not kept for them).
	children int
	idx      int // in document order
	level    int // the level of its (first) statement
	start    int // when the executor reads it (see walker.t)
	conn     string
	args     args
	// argsKey identifies its arguments: the executor's loaders share reads
	// of the same arguments (see timing).
	argsKey string
	// err answers every occurrence of the field, before any read (a role,
	// includeDeleted, a filter past its caps, a bad first or after).
	err     error
	conds   []models.Cond
	after   models.Cond // pages: strictly after the cursor
	first   int         // pages
	cols    colset      // columns of the target read
	cursors bool        // edges' cursors or endCursor are asked
	total   bool        // totalCount is asked
	// mapped: the conditions on the rows behind the targets
	behind []models.Cond
	// templates are its statements, by name, once built (see template).
	templates sync.Map
}

func idCol(t *objType) colset {
	if t == nil {
		return 0
	}
	return t.col("id").bit
}

// prepare computes what the relation's statements need and the errors the
// executor answers before reading, in the executor's order.
func (w *walker) prepare(cf graphql.CollectedField, r *rel) error {
	s, a, spec := w.p.scope, r.args, r.spec
	if err := roleCheck(w.ctx, cf.Definition); err != nil {
		return err
	}
	var err error
	switch spec.kind {
	case kindGet:
		r.conds, err = models.GetConds(s, spec.target.table, a.includeDeleted)
	case kindViewerEntity:
		r.conds, err = models.GetConds(s, spec.target.table, false)
	case kindList, kindPage:
		return w.preparePage(r)
	case kindEntity:
		r.conds = models.ByIDConds(s, spec.target.table, spec.target.table.Alias())
	case kindLabels, kindAnnotations:
		r.conds = []models.Cond{spec.visible(s)}
	case kindLatest:
		r.conds = models.LatestObjectConds(s)
	case kindTargets, kindMapped:
		r.conds = []models.Cond{models.ScopeOf(s, models.AgentTargets, "t")}
		if spec.kind == kindMapped {
			r.behind = models.ByIDConds(s, spec.target.table, spec.target.table.Alias())
		}
	case kindDesired:
		r.conds = models.DesiredStateConds(s)
		r.cols |= w.orderCols(r)
	}
	return err
}

func (w *walker) preparePage(r *rel) error {
	a := r.args
	r.argsKey = fmt.Sprintf("%v %v %v %+v", deref(a.first), deref(a.after), a.includeDeleted, a.filter)
	var err error
	if r.conds, err = r.spec.list.conds(w.p.scope, r.args.filter, r.args.includeDeleted); err != nil {
		return err
	}
	if r.first, err = models.PageSize(r.args.first); err != nil {
		return err
	}
	r.after, err = orders[r.spec.target].After(r.spec.target.table.Alias(), r.args.after)
	r.cols |= w.orderCols(r)
	return err
}

// deref is *p, or "-" for nil.
func deref[T any](p *T) any {
	if p == nil {
		return "-"
	}
	return *p
}

func (w *walker) orderCols(r *rel) colset {
	var set colset
	for _, c := range orderCols[r.spec.target] {
		set |= r.spec.target.col(c).bit
	}
	return set
}
