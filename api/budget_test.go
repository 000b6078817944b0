package api_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/brokkr/brokkr/api"
	"github.com/brokkr/brokkr/dbtest"
	"github.com/brokkr/brokkr/graph"
	"github.com/brokkr/brokkr/models"
)

// item9Query is the first dashboard query a newcomer types (issue 8, item
// 9): default page sizes four levels deep.
const item9Query = `{ generators(first: 50) { nodes { name stacks { nodes { name deploymentObjects {
	totalCount nodes { sequenceId events%s { nodes { status agent { name } } } } } } } } } }`

// Reads are budgeted by the rows they read, not by a static worst case:
// the newcomer's query is served on a small database; past the budget it
// is refused whole, naming the connection where the budget ran out.
func TestRowBudget(t *testing.T) {
	t.Parallel()
	// A server with a row budget (0: the default) on a database of 2
	// generators, 6 stacks, 24 objects and 120 events.
	server := func(budget int) (*env, string) {
		db := dbtest.New(t)
		seedDashboard(t, db.Bun, 2, 3, 4, 5)
		var key string
		return setupOn(t, db, api.Config{RowBudget: budget}, &key), key
	}
	// executor is server with gqlgen's executor only, whose statements a
	// bun query hook sees (the read planner's go through pgx: see
	// graph/readplan's TestPlannerAsksForRowsLeft).
	executor := func(budget int) (*env, string) {
		db := dbtest.New(t)
		seedDashboard(t, db.Bun, 2, 3, 4, 5)
		var key string
		return setupOn(t, db, api.Config{RowBudget: budget, DisableReadPlanner: true}, &key), key
	}

	t.Run("served on a small database", func(t *testing.T) {
		e, key := server(0) // the default budget
		d := e.ok(t, key, fmt.Sprintf(item9Query, ""), nil)
		events := 0
		for _, g := range list(d, "generators", "nodes") {
			for _, s := range list(g, "stacks", "nodes") {
				for _, o := range list(s, "deploymentObjects", "nodes") {
					events += len(list(o, "events", "nodes"))
				}
			}
		}
		if events != 120 {
			t.Fatalf("%d events", events)
		}
	})

	// refused checks that query is refused whole, naming a connection that
	// conn (a regular expression) matches, and that a normal request is
	// served after it.
	refused := func(t *testing.T, e *env, key, query, conn string, budget int) {
		t.Helper()
		r := e.gql(t, key, query, nil)
		if r.code() != "ROW_BUDGET_EXCEEDED" || len(r.Errors) != 1 || r.Data != nil {
			t.Fatalf("want one ROW_BUDGET_EXCEEDED and no data: %.600s", r.Raw)
		}
		ext := r.Errors[0].Extensions
		named, _ := ext["connection"].(string)
		if !regexp.MustCompile(`^`+conn+`$`).MatchString(named) || ext["rowBudget"] != float64(budget) {
			t.Fatalf("extensions %v, want a connection matching %s and rowBudget %d", ext, conn, budget)
		}
		if msg := r.Errors[0].Message; !strings.Contains(msg, "the "+named+" connection") || !strings.Contains(msg, "`first`") {
			t.Fatalf("the message does not say where to pass first: %q", msg)
		}
		e.ok(t, key, `{ viewer { role } }`, nil)
	}

	t.Run("refused where the budget runs out", func(t *testing.T) {
		// 2 generators and 6 stacks fit in 20 rows; 24 objects do not.
		e, key := server(20)
		refused(t, e, key, fmt.Sprintf(item9Query, ""), `generators\.nodes\.stacks\.nodes\.deploymentObjects`, 20)
	})

	t.Run("each statement asks for the rows left plus one", func(t *testing.T) {
		// 2 + 6 + 24 rows fit in 100; 120 events do not. The events'
		// statement must not read them all: at most the 100 - (2 + 3 + 4)
		// rows left when its first object was delivered, plus one.
		e, key := executor(100)
		c := &statementCounter{}
		e.db.Bun.AddQueryHook(c)
		c.start()
		refused(t, e, key, fmt.Sprintf(item9Query, ""), `generators\.nodes\.stacks\.nodes\.deploymentObjects\.nodes\.events`, 100)
		var limit int
		for _, s := range c.stop() {
			if strings.Contains(s, "e.deployment_object_id IN") {
				m := regexp.MustCompile(`LIMIT (\d+)\s*$`).FindStringSubmatch(s)
				if m == nil {
					t.Fatalf("the events' statement has no LIMIT: %s", s)
				}
				limit, _ = strconv.Atoi(m[1])
			}
		}
		if limit < 1 || limit > 100-(2+3+4)+1 {
			t.Fatalf("the events' statement asked for %d rows", limit)
		}
		// Passing first where the message says serves it: 2 + 6 + 24
		// objects + 24 events + their 24 agents.
		d := e.ok(t, key, fmt.Sprintf(item9Query, "(first: 1)"), nil)
		if n := len(list(d, "generators", "nodes", 0, "stacks", "nodes", 0, "deploymentObjects", "nodes", 0, "events", "nodes")); n != 1 {
			t.Fatalf("%d events with first: 1", n)
		}
	})

	t.Run("the dashboard benchmark's shape holds 22,820 rows", func(t *testing.T) {
		// 20 generators, 200 stacks with their label, annotation and
		// generator, 2,000 objects, 10,000 events and their agent: served
		// within exactly that budget (and so within the default), refused
		// one row below it.
		db := dbtest.New(t)
		seedDashboard(t, db.Bun, 20, 10, 10, 5)
		var key string
		e := setupOn(t, db, api.Config{RowBudget: 22_820}, &key)
		e.ok(t, key, dashboardQuery, dashboardVars(20, 10, 10, 5))
		db2 := dbtest.New(t)
		seedDashboard(t, db2.Bun, 20, 10, 10, 5)
		e2 := setupOn(t, db2, api.Config{RowBudget: 22_819}, &key)
		if r := e2.gql(t, key, dashboardQuery, dashboardVars(20, 10, 10, 5)); r.code() != "ROW_BUDGET_EXCEEDED" {
			t.Fatalf("one row below: %.300s", r.Raw)
		}
		if api.DefaultRowBudget < 22_820 {
			t.Fatalf("the default budget (%d) does not serve the dashboard", api.DefaultRowBudget)
		}
	})

	t.Run("aliases spend what they deliver", func(t *testing.T) {
		// The generators' page is read once but delivered once per alias.
		e, key := server(10)
		five := "{ "
		for i := range 5 {
			five += fmt.Sprintf("a%d: generators { totalCount } ", i)
		}
		e.ok(t, key, five+"}", nil)
		refused(t, e, key, five+"a5: generators { totalCount } }", `a[0-5]`, 10)
	})

	t.Run("a mutation's answer is not replaced", func(t *testing.T) {
		// A mutation's answer must not hide its commit: the read past the
		// budget fails on its own fields (where gqlgen's null propagation
		// takes it: today up to the non-null result), and the commit stands.
		e, key := server(10)
		var gen string
		if err := e.db.Bun.NewRaw(`SELECT id FROM generators ORDER BY name LIMIT 1`).Scan(context.Background(), &gen); err != nil {
			t.Fatal(err)
		}
		r := e.gql(t, key, `mutation($id: ID!) { updateGenerator(id: $id, input: {description: "budgeted"}) {
			id description stacks { nodes { deploymentObjects { nodes { id } } } } } }`, map[string]any{"id": gen})
		if r.code() != "ROW_BUDGET_EXCEEDED" || len(r.Errors[0].Path) < 3 || r.Errors[0].Path[0] != "updateGenerator" {
			t.Fatalf("want the budget's error on a field of the mutation's result: %.600s", r.Raw)
		}
		if d := e.ok(t, key, `query($id: ID!) { generator(id: $id) { description } }`, map[string]any{"id": gen}); str(d, "generator", "description") != "budgeted" {
			t.Fatalf("the update did not commit: %v", d)
		}
	})
}

// A budget error that reaches the presenter without a connection named
// (no read path does that today) keeps its code rather than INTERNAL.
func TestRowBudgetPresented(t *testing.T) {
	t.Parallel()
	ge := graph.ErrorPresenter(slog.New(slog.NewTextHandler(io.Discard, nil)))(context.Background(), fmt.Errorf("models.X: %w", models.ErrRowBudget))
	if ge.Extensions["code"] != "ROW_BUDGET_EXCEEDED" || ge.Message != models.ErrRowBudget.Message {
		t.Fatalf("presented as %+v", ge)
	}
}
