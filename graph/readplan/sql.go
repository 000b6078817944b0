package readplan

import (
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/schema"

	"github.com/brokkr/brokkr/models"
)

// Statements are built with bun, but every value goes in as a parameter
// ($1, $2, …) rather than inlined as bun would: a statement's text then
// depends on the query's shape only (its columns, which conditions apply),
// not on ids, cursors or page sizes, so each connection prepares it once
// and PostgreSQL neither parses nor plans it again (see run.go).

// stmt is one statement with its arguments, and what reads its rows.
type stmt struct {
	sql  string
	args []any
	read func(pgx.Rows) error
}

// builder builds one statement: its parameters are numbered as bun
// formats them.
type builder struct {
	db   *bun.DB
	args []any
}

// param is one parameter: bun asks it to append itself, and it appends
// $n, keeping its value as the nth argument.
type param struct {
	b *builder
	v any
}

func (p param) AppendQuery(_ schema.QueryGen, b []byte) ([]byte, error) {
	p.b.args = append(p.b.args, p.v)
	b = append(b, '$')
	return strconv.AppendInt(b, int64(len(p.b.args)), 10), nil
}

// p makes v a parameter. UUIDs go as their 16 bytes, which pgx sends
// binary (uuid.UUID's driver.Valuer would send text).
func (b *builder) p(v any) param {
	switch a := v.(type) {
	case models.TextArray:
		v = []string(a)
	case uuid.UUID:
		v = [16]byte(a)
	case *uuid.UUID:
		if a != nil {
			v = [16]byte(*a)
		}
	case []uuid.UUID:
		ids := make([][16]byte, len(a))
		for i, id := range a {
			ids[i] = id
		}
		v = ids
	}
	return param{b: b, v: v}
}

func (b *builder) params(vs []any) []any {
	if len(vs) == 0 {
		return nil
	}
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i] = b.p(v)
	}
	return out
}

// where adds conditions, their arguments as parameters.
func (b *builder) where(q *bun.SelectQuery, cs ...models.Cond) *bun.SelectQuery {
	for _, c := range cs {
		q = q.Where(c.SQL, b.params(c.Args)...)
	}
	return q
}

// sel starts a SELECT over a table.
func (b *builder) sel(table, alias string) *bun.SelectQuery {
	return b.db.NewSelect().TableExpr(table + " AS " + alias)
}

// limited is q LIMIT n, n a parameter (nil: no limit).
func (b *builder) limited(q *bun.SelectQuery, n any) *bun.RawQuery {
	return b.db.NewRaw("? LIMIT ?", q, b.p(n))
}

// slot is a parameter whose value each execution gives: a statement's
// text and its other arguments depend on the plan only, and are built once
// per plan (see rel.template).
type slot int

const (
	slotKeys  slot = iota + 1 // the parents' (or rows') ids
	slotLimit                 // the rows left plus one; nil without a budget
	slotFirst                 // a root page's LIMIT: first+1, at most slotLimit
)

// template is a statement's text and arguments, slots among them.
type template struct {
	sql  string
	args []any
}

// template returns r's statement called name, building it with build the
// first time (plans are shared by concurrent executions: see planCache).
func (r *rel) template(db *bun.DB, name string, build func(b *builder) schema.QueryAppender) (*template, error) {
	if t, ok := r.templates.Load(name); ok {
		return t.(*template), nil
	}
	b := &builder{db: db}
	text, err := build(b).AppendQuery(db.QueryGen(), nil)
	if err != nil {
		return nil, err
	}
	t, _ := r.templates.LoadOrStore(name, &template{sql: string(text), args: b.args})
	return t.(*template), nil
}

// stmt is r's statement called name for this execution: its slots filled
// in (ids: the keys it reads), its rows read by read.
func (x *exec) stmt(r *rel, name string, ids []uuid.UUID, build func(b *builder) schema.QueryAppender, read func(pgx.Rows) error) (*stmt, error) {
	t, err := r.template(x.db, name, build)
	if err != nil {
		return nil, err
	}
	args := make([]any, len(t.args))
	for i, a := range t.args {
		s, ok := a.(slot)
		switch {
		case !ok:
			args[i] = a
		case s == slotKeys:
			keys := make([][16]byte, len(ids))
			for j, id := range ids {
				keys[j] = id
			}
			args[i] = keys
		case s == slotLimit:
			args[i] = x.limit()
		case s == slotFirst:
			n := r.first + 1
			if l := x.budget.Limit(); l > 0 {
				n = min(n, l)
			}
			args[i] = n
		}
	}
	return &stmt{sql: t.sql, args: args, read: read}, nil
}

// columns is the SELECT list of the columns set of t over alias.
func columns(t *objType, set colset, alias string) string {
	var sb strings.Builder
	for _, c := range t.cols {
		if set&c.bit == 0 {
			continue
		}
		if sb.Len() > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(alias + "." + c.name)
	}
	return sb.String()
}

// scanner scans rows of t's columns set, after lead leading columns.
type scanner struct {
	t     *objType
	row   func() any
	cols  []*column
	dests []any
}

func newScanner(t *objType, set colset, lead ...any) *scanner {
	s := &scanner{t: t, row: t.rowsOf()}
	for _, c := range t.cols {
		if set&c.bit != 0 {
			s.cols = append(s.cols, c)
		}
	}
	s.dests = append(make([]any, 0, len(lead)+len(s.cols)), lead...)
	s.dests = s.dests[:len(lead)+len(s.cols)]
	return s
}

// next scans the current row into a new object.
func (s *scanner) next(rows pgx.Rows) (any, error) {
	o := s.row()
	lead := len(s.dests) - len(s.cols)
	for i, c := range s.cols {
		s.dests[lead+i] = c.dest(o)
	}
	return o, rows.Scan(s.dests...)
}

// tableNames are the SQL names of the planner's tables.
var tableNames = [...]string{models.Generators: "generators", models.Stacks: "stacks",
	models.DeploymentObjects: "deployment_objects", models.Agents: "agents", models.AgentEvents: "agent_events",
	models.AgentTargets: "agent_targets"}
