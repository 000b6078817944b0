// Package readplan is Brokkr's compiled read path (DESIGN §8): a gqlgen
// extension that answers the query operations it understands itself, with
// one statement per relation per level of the query, built with bun, sent
// prepared and in one round trip per level through pgx, reading only the
// columns asked for, and the JSON answer written directly, byte for byte
// the executor's. gqlgen still parses, validates, authenticates, limits
// and rate-limits every operation first; anything the planner does not
// understand (introspection, @defer, an argument only the executor can
// refuse in its words, a field it does not know) goes to gqlgen's executor
// whole, and is counted in brokkr_read_planner_fallbacks_total.
//
// Files: walk.go (the operation into a plan), rel.go and schema.go (the
// relations and types it knows), sql.go, stmts.go and pages.go (the
// statements), run.go (sending them), exec.go (levels, the row budget),
// write.go and json.go (the answer).
package readplan

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/brokkr/brokkr/auth"
	"github.com/brokkr/brokkr/graph"
	"github.com/brokkr/brokkr/models"
)

// Planner is the extension. Register it after graph.Guard and
// graph.LoaderExtension: it is a response interceptor that answers
// without calling the executor, so everything before it has run.
type Planner struct {
	db        *bun.DB
	rowBudget int
	logger    *slog.Logger
	planned   prometheus.Counter
	fallbacks *prometheus.CounterVec
	m         *metrics
	// sizes are the sizes of the last answers to recent documents: the
	// answer's buffer is made that large at once (a dashboard asks the
	// same query again and again), instead of growing to it by doubling
	// (a third of a large read's allocations).
	sizes *lru.LRU[int]
	// plans are recent plans, by document, variables and scope (a plan
	// and its statements' texts are built once: a dashboard asks the same
	// query again and again); they are not changed by executions.
	plans *lru.LRU[*plan]
}

// sizeHints is how many documents' answer sizes the planner remembers,
// plans how many plans.
const (
	sizeHints = 256
	plans     = 256
)

// metrics count what the planner sends PostgreSQL.
type metrics struct {
	statements, batches, prepares prometheus.Counter
}

var _ interface {
	graphql.HandlerExtension
	graphql.ResponseInterceptor
} = (*Planner)(nil)

// New returns a planner reading db, with a row budget of rowBudget rows
// per answer (0 or less: none), as graph.LoaderExtension's.
func New(db *bun.DB, rowBudget int, logger *slog.Logger) *Planner {
	if logger == nil {
		logger = slog.Default()
	}
	return &Planner{db: db, rowBudget: rowBudget, logger: logger, sizes: lru.New[int](sizeHints), plans: lru.New[*plan](plans),
		planned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "brokkr_read_planner_planned_total",
			Help: "Query operations answered by the read planner.",
		}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "brokkr_read_planner_fallbacks_total",
			Help: "Query operations the read planner left to gqlgen's executor, by reason.",
		}, []string{"reason"}),
		m: &metrics{
			statements: prometheus.NewCounter(prometheus.CounterOpts{
				Name: "brokkr_read_planner_statements_total",
				Help: "Statements the read planner ran.",
			}),
			batches: prometheus.NewCounter(prometheus.CounterOpts{
				Name: "brokkr_read_planner_batches_total",
				Help: "Round trips of the read planner's statements (one per level of a query).",
			}),
			prepares: prometheus.NewCounter(prometheus.CounterOpts{
				Name: "brokkr_read_planner_prepares_total",
				Help: "Statements the read planner prepared (once per connection and statement text).",
			}),
		},
	}
}

// Collectors are the planner's metrics.
func (p *Planner) Collectors() []prometheus.Collector {
	return []prometheus.Collector{p.planned, p.fallbacks, p.m.statements, p.m.batches, p.m.prepares}
}

func (*Planner) ExtensionName() string                   { return "BrokkrReadPlanner" }
func (*Planner) Validate(graphql.ExecutableSchema) error { return nil }

// answeredKey marks an operation the planner has answered (in its
// OperationContext's Stats, which extensions keep their data in).
const answeredKey = "brokkr.readplan.answered"

func (p *Planner) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	if !graphql.HasOperationContext(ctx) || len(graphql.GetErrors(ctx)) > 0 {
		return next(ctx) // an error answered outside execution (DispatchError)
	}
	oc := graphql.GetOperationContext(ctx)
	if oc.Operation == nil || oc.Operation.Operation != ast.Query {
		return next(ctx) // mutations and subscriptions are the executor's
	}
	if oc.Stats.GetExtension(answeredKey) != nil {
		// A transport asks for responses until there are none (a
		// websocket's next, then complete): a query has one.
		return nil
	}
	scope, ok := auth.ForContext(ctx)
	if !ok {
		return p.fallback(ctx, next, "unauthenticated")
	}
	key, cacheable := planKey(oc, scope)
	pl, ok := p.plans.Get(ctx, key)
	if !ok || !cacheable {
		var reason string
		if pl, reason = walk(ctx, oc, scope); reason != "" {
			return p.fallback(ctx, next, reason)
		}
		if cacheable {
			p.plans.Add(ctx, key, pl)
		}
	}
	resp, err := p.answer(ctx, oc, pl)
	if err != nil {
		p.logger.ErrorContext(ctx, "readplan: planner failed; the executor answers", "err", err)
		return p.fallback(ctx, next, "panic")
	}
	p.planned.Inc()
	oc.Stats.SetExtension(answeredKey, true)
	return resp
}

// planKey identifies a plan: the document and operation, the variables
// and the scope. A query whose variables do not encode is not cached.
func planKey(oc *graphql.OperationContext, s models.Scope) (string, bool) {
	vars, err := json.Marshal(oc.Variables)
	if err != nil {
		return "", false
	}
	return string(s.Role) + " " + s.GeneratorID.String() + " " + s.AgentID.String() + "\n" +
		oc.OperationName + "\n" + string(vars) + "\n" + oc.RawQuery, true
}

func (p *Planner) fallback(ctx context.Context, next graphql.ResponseHandler, reason string) *graphql.Response {
	p.fallbacks.WithLabelValues(reason).Inc()
	return next(ctx)
}

// answer executes a plan and writes its answer. A panic is returned as an
// error (nothing of the answer has been sent yet: the executor answers).
func (p *Planner) answer(ctx context.Context, oc *graphql.OperationContext, pl *plan) (resp *graphql.Response, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("panic: %v\n%s", v, debug.Stack())
		}
	}()
	var x *exec
	rerr := models.ReadPgx(ctx, p.db, func(c *pgx.Conn) error {
		x = newExec(pl, p.db, p.rowBudget, p.m)
		return x.run(ctx, c)
	})
	if x == nil { // no connection: every root field fails
		x = newExec(pl, p.db, p.rowBudget, p.m)
		if len(pl.levels) > 0 {
			x.fail(0, rerr)
		}
	}
	if x.refused != "" {
		return &graphql.Response{Errors: gqlerror.List{graph.BudgetError(x.budget.Max(), x.refused)}}, nil
	}
	ctx = graphql.WithFreshResponseContext(ctx)
	w := &writer{x: x, ctx: ctx}
	doc := oc.OperationName + "\n" + oc.RawQuery
	if n, ok := p.sizes.Get(ctx, doc); ok {
		w.b = make([]byte, 0, n+n/8)
	}
	data := w.answer(pl.root)
	p.sizes.Add(ctx, doc, len(data))
	return &graphql.Response{Data: data, Errors: graphql.GetErrors(ctx)}, nil
}
