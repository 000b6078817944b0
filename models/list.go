package models

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// Cursors are opaque to clients: base64url of "<order>:<sort key>". Each
// order has its own tag so a cursor from one kind of list is refused by
// another.
type order int

const (
	byCreatedAsc   order = iota // (created_at, id) ascending: generators, stacks, agents
	bySequenceDesc              // sequence_id descending: deployment objects
	byCreatedDesc               // (created_at DESC, id): agent events
)

var orderTags = [...]string{byCreatedAsc: "c", bySequenceDesc: "s", byCreatedDesc: "e"}

type cursorKey struct {
	at  time.Time
	id  uuid.UUID
	seq int64
}

func encodeCursor(o order, k cursorKey) string {
	var s string
	if o == bySequenceDesc {
		s = orderTags[o] + ":" + strconv.FormatInt(k.seq, 10)
	} else {
		s = orderTags[o] + ":" + strconv.FormatInt(k.at.UnixMicro(), 10) + ":" + k.id.String()
	}
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

func decodeCursor(o order, c string) (cursorKey, error) {
	bad := Invalid("after", "not a cursor of this list")
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return cursorKey{}, bad
	}
	parts := strings.Split(string(raw), ":")
	if parts[0] != orderTags[o] {
		return cursorKey{}, bad
	}
	if o == bySequenceDesc {
		if len(parts) != 2 {
			return cursorKey{}, bad
		}
		seq, err := strconv.ParseInt(parts[1], 10, 64)
		if err != nil {
			return cursorKey{}, bad
		}
		return cursorKey{seq: seq}, nil
	}
	if len(parts) != 3 {
		return cursorKey{}, bad
	}
	us, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return cursorKey{}, bad
	}
	id, err := uuid.Parse(parts[2])
	if err != nil {
		return cursorKey{}, bad
	}
	return cursorKey{at: time.UnixMicro(us).UTC(), id: id}, nil
}

// pageFirst resolves ListArgs.First.
func pageFirst(args ListArgs) (int, error) {
	if args.First == nil {
		return DefaultFirst, nil
	}
	n := *args.First
	if n < 1 {
		return 0, Invalid("first", "first must be at least 1")
	}
	if n > MaxFirst {
		return 0, Invalid("first", "first must be at most %d", MaxFirst)
	}
	return n, nil
}

// orderBy is the ORDER BY list of an order over alias.
func orderBy(o order, alias string) string {
	switch o {
	case bySequenceDesc:
		return alias + ".sequence_id DESC"
	case byCreatedDesc:
		return alias + ".created_at DESC, " + alias + ".id"
	}
	return alias + ".created_at, " + alias + ".id"
}

// afterCond is the condition "strictly after the cursor" over alias.
func afterCond(o order, alias string, k *cursorKey) cond {
	if k == nil {
		return condTrue
	}
	switch o {
	case bySequenceDesc:
		return cond{sql: alias + ".sequence_id < ?", args: []any{k.seq}}
	case byCreatedDesc:
		return mk("{a}.created_at < ? OR ({a}.created_at = ? AND {a}.id > ?)", alias, k.at, k.at, k.id)
	}
	return mk("({a}.created_at, {a}.id) > (?, ?)", alias, k.at, k.id)
}

// pageRow is a row of a page query: the node plus the window columns.
type pageRow[T any] interface {
	node() *T
	meta() (total int, after bool)
}

// pageMeta carries the window columns of a page query. Columns whose names
// start with "_" are otherwise discarded by bun.
type pageMeta struct {
	PageTotal int  `bun:"_total,scanonly"`
	PageAfter bool `bun:"_after,scanonly"`
}

func (m *pageMeta) meta() (int, bool) { return m.PageTotal, m.PageAfter }

type generatorRow struct {
	Generator `bun:",extend"`
	pageMeta
}

func (r *generatorRow) node() *Generator { return &r.Generator }

type stackRow struct {
	Stack `bun:",extend"`
	pageMeta
}

func (r *stackRow) node() *Stack { return &r.Stack }

type deploymentObjectRow struct {
	DeploymentObject `bun:",extend"`
	pageMeta
}

func (r *deploymentObjectRow) node() *DeploymentObject { return &r.DeploymentObject }

type agentRow struct {
	Agent `bun:",extend"`
	pageMeta
}

func (r *agentRow) node() *Agent { return &r.Agent }

type agentEventRow struct {
	AgentEvent `bun:",extend"`
	pageMeta
}

func (r *agentEventRow) node() *AgentEvent { return &r.AgentEvent }

// pageSpec describes one paged list.
type pageSpec[T any] struct {
	alias     string             // the model's alias in base
	order     order              // sort order (and cursor kind)
	partition string             // column of the parent in batched lists ("" = one list)
	parent    func(*T) uuid.UUID // the parent of a node (batched lists)
	key       func(*T) cursorKey // the sort key of a node
}

// runPage runs base (a SELECT over the model, with scope, filters and
// liveness applied, columns not set) as ONE statement that returns, for
// every parent, the first rows after the cursor, plus their total count:
//
//	SELECT * FROM (
//	  SELECT x.*, count(*) OVER w AS _total,
//	         row_number() OVER (w ORDER BY key) AS _rn,
//	         (after) AS _after,
//	         count(*) FILTER (WHERE NOT (after)) OVER w AS _before
//	  FROM ... WINDOW w AS (PARTITION BY parent)) AS p
//	WHERE (p._after AND p._rn - p._before <= first+1) OR p._rn = 1
//
// (without a cursor: WHERE p._rn <= first+1), with LIMIT budget.Limit()
// when args carry a row budget. A row with _after false is a
// sentinel that only carries _total (so the count survives a cursor past
// the end); the (first+1)th row says there is a next page. Pages are keyed
// by parent (uuid.Nil when unpartitioned).
func runPage[T any, R any, PR interface {
	*R
	pageRow[T]
}](ctx context.Context, db bun.IDB, base *bun.SelectQuery, spec pageSpec[T], args ListArgs, parents []uuid.UUID) (map[uuid.UUID]*Page[T], error) {
	first, err := pageFirst(args)
	if err != nil {
		return nil, err
	}
	if args.Budget.Passed() {
		return nil, ErrRowBudget
	}
	var after *cursorKey
	if args.After != nil {
		k, err := decodeCursor(spec.order, *args.After)
		if err != nil {
			return nil, err
		}
		after = &k
	}
	a := spec.alias
	part := ""
	if spec.partition != "" {
		part = spec.partition + ", "
	}
	ac := afterCond(spec.order, a, after)
	// Every window shares PARTITION BY parent, and row_number's ORDER BY
	// extends it, so PostgreSQL sorts once. The rank of a row among those
	// after the cursor is _rn - _before: rows before the cursor sort first.
	win := "PARTITION BY " + part + "TRUE"
	inner := base.ColumnExpr(a + ".*").
		ColumnExpr("count(*) OVER (" + win + ") AS _total").
		ColumnExpr("row_number() OVER (" + win + " ORDER BY " + orderBy(spec.order, a) + ") AS _rn")
	filter := "p._rn <= ?" // first page: PostgreSQL stops each partition early
	if after != nil {
		inner = inner.ColumnExpr("("+ac.sql+") AS _after", ac.args...).
			ColumnExpr("count(*) FILTER (WHERE NOT ("+ac.sql+")) OVER ("+win+") AS _before", ac.args...)
		filter = "(p._after AND p._rn - p._before <= ?) OR p._rn = 1"
	} else {
		inner = inner.ColumnExpr("TRUE AS _after")
	}
	outerOrder := orderBy(spec.order, "p")
	if spec.partition != "" {
		outerOrder = "p." + spec.partition[strings.IndexByte(spec.partition, '.')+1:] + ", " + outerOrder
	}
	// Room for every row the statement can return (first+1 per parent),
	// so bun appends without regrowing a slice of whole rows, bounded so
	// that a large first over many sparse parents does not reserve more
	// than it may need.
	presize := min(max(len(parents), 1)*(first+1)+1, maxPresizedRows)
	query, qargs := "SELECT * FROM (?) AS p WHERE "+filter+" ORDER BY "+outerOrder, []any{inner, first + 1}
	if limit := args.Budget.Limit(); limit > 0 {
		// At most the rows left in the response's budget, plus one to see
		// that the budget would pass (then the pages are not built).
		query += " LIMIT ?"
		qargs = append(qargs, limit)
		presize = min(presize, limit)
	}
	rows := make([]R, 0, presize)
	if err := db.NewRaw(query, qargs...).Scan(ctx, &rows); err != nil {
		return nil, err
	}
	if err := args.Budget.Check(len(rows)); err != nil {
		return nil, err
	}
	return pagesOf[T, R, PR](rows, spec, first, parents), nil
}

// pagesOf builds runPage's pages from its rows.
func pagesOf[T any, R any, PR interface {
	*R
	pageRow[T]
}](rows []R, spec pageSpec[T], first int, parents []uuid.UUID) map[uuid.UUID]*Page[T] {
	pages := make(map[uuid.UUID]*Page[T], len(parents)+1)
	for _, p := range parents {
		pages[p] = &Page[T]{Nodes: []*T{}, Cursors: []string{}}
	}
	if spec.partition == "" {
		pages[uuid.Nil] = &Page[T]{Nodes: []*T{}, Cursors: []string{}}
	}
	for i := range rows {
		r := PR(&rows[i])
		n := r.node()
		parent := uuid.Nil
		if spec.parent != nil && spec.partition != "" {
			parent = spec.parent(n)
		}
		pg := pages[parent]
		if pg == nil {
			pg = &Page[T]{Nodes: []*T{}, Cursors: []string{}}
			pages[parent] = pg
		}
		total, isAfter := r.meta()
		pg.TotalCount = total
		if !isAfter {
			continue
		}
		if len(pg.Nodes) == first {
			pg.HasNextPage = true
			continue
		}
		c := encodeCursor(spec.order, spec.key(n))
		pg.Nodes = append(pg.Nodes, n)
		pg.Cursors = append(pg.Cursors, c)
		pg.EndCursor = &c
	}
	return pages
}

// maxPresizedRows bounds the rows runPage reserves up front (some MB at
// the widest row type).
const maxPresizedRows = 1 << 14

func createdKey(at time.Time, id uuid.UUID) cursorKey { return cursorKey{at: at, id: id} }

var (
	generatorPage = pageSpec[Generator]{alias: "g", order: byCreatedAsc,
		key: func(g *Generator) cursorKey { return createdKey(g.CreatedAt, g.ID) }}
	stackPage = pageSpec[Stack]{alias: "s", order: byCreatedAsc,
		key:    func(s *Stack) cursorKey { return createdKey(s.CreatedAt, s.ID) },
		parent: func(s *Stack) uuid.UUID { return s.GeneratorID }}
	agentPage = pageSpec[Agent]{alias: "a", order: byCreatedAsc,
		key: func(a *Agent) cursorKey { return createdKey(a.CreatedAt, a.ID) }}
	deploymentObjectPage = pageSpec[DeploymentObject]{alias: "d", order: bySequenceDesc,
		key:    func(d *DeploymentObject) cursorKey { return cursorKey{seq: d.SequenceID} },
		parent: func(d *DeploymentObject) uuid.UUID { return d.StackID }}
	agentEventPage = pageSpec[AgentEvent]{alias: "e", order: byCreatedDesc,
		key: func(e *AgentEvent) cursorKey { return createdKey(e.CreatedAt, e.ID) }}
)

// single returns the one page of an unpartitioned list.
func single[T any](pages map[uuid.UUID]*Page[T], err error) (*Page[T], error) {
	if err != nil {
		return nil, err
	}
	return pages[uuid.Nil], nil
}
